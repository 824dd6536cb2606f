"""Templates render with the partner's brand; HTML is escaped, text is not; headers stay one line."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from controlplane.mail.render import Attachment, BrandView, TemplateMissing, message_id, render
from controlplane.mail.rules import rule_for
from controlplane.mail.schedule import MAX_ATTEMPTS, retry_delay
from controlplane.mail.sender import with_from
from controlplane.mail.store import Job

BRAND = BrandView(name="ACME Phones", color="#1a73e8", support_email="help@acme.example",
                  logo=Attachment("logo.png", "image/png", b"\x89PNG\r\n\x1a\nlogo"))


def _parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _body(msg: EmailMessage, kind: str) -> str:
    part = msg.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())


def test_a_message_carries_the_brand_and_escapes_html() -> None:
    rendered = render("message", {"subject": "Invoice <ready>", "body": "Total: 5 < 6 & <b>bold</b>"},
                      brand=BRAND, to="b@tenant.example", reference="ref-1")
    msg = _parse(rendered.message)
    assert msg["Subject"] == "Invoice <ready>" and msg["To"] == "b@tenant.example"
    assert msg["Reply-To"] == "help@acme.example" and msg["From"] is None  # the worker adds From
    html, text = _body(msg, "html"), _body(msg, "plain")
    assert "5 &lt; 6 &amp; &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "Total: 5 < 6 & <b>bold</b>" in text and "ACME Phones" in text and "help@acme.example" in text
    assert "#1a73e8" in html and 'src="cid:brand-logo"' in html
    inline = [p for p in msg.walk() if p["Content-ID"] == "<brand-logo>"]
    assert len(inline) == 1 and inline[0].get_payload(decode=True) == BRAND.logo.data  # type: ignore[union-attr]


def test_attachments_and_a_stable_message_id() -> None:
    pdf = Attachment("SUB-2026-000001.pdf", "application/pdf", b"%PDF-1.4 fake")
    wav = Attachment("vm.wav", "audio/wav", b"RIFF....WAVE")
    first = render("message", {"subject": "s", "body": "b"}, brand=BrandView(name="X"), to="a@b.co",
                   reference="invoice:1", attachments=[pdf, wav])
    again = render("message", {"subject": "s", "body": "b"}, brand=BrandView(name="X"), to="a@b.co",
                   reference="invoice:1")
    msg = _parse(first.message)
    found = [(a.get_filename(), a.get_content_type(), a.get_payload(decode=True)) for a in msg.iter_attachments()]
    assert found == [(pdf.filename, "application/pdf", pdf.data), (wav.filename, "audio/wav", wav.data)]
    assert first.message_id == again.message_id == message_id("invoice:1") == msg["Message-ID"]


def test_a_subject_cannot_inject_headers() -> None:
    rendered = render("message", {"subject": "Hi\r\nBcc: victim@x.example", "body": "b"}, brand=BRAND,
                      to="a@b.co", reference="r")
    msg = _parse(rendered.message)
    assert msg["Bcc"] is None and msg["Subject"] == "Hi Bcc: victim@x.example"


def test_unknown_templates_and_missing_values_fail_loudly() -> None:
    with pytest.raises(TemplateMissing):
        render("no_such_template", {}, brand=BRAND, to="a@b.co", reference="r")
    with pytest.raises(Exception, match="subject"):
        render("message", {"body": "b"}, brand=BRAND, to="a@b.co", reference="r")


@pytest.mark.parametrize(("template", "event_type", "data", "expect"), [
    ("notify_usage", "usage.threshold_reached",
     {"cap": "monthly_minutes", "used": 4800, "limit": 6000, "threshold_pct": 80, "unit": "seconds"},
     "reached 80% of its limit"),
    ("notify_usage", "usage.cap_reached", {"cap": "monthly_spend", "auto_suspend": True}, "suspended automatically"),
    ("notify_webhook_disabled", "webhook_endpoint.disabled",
     {"webhook_endpoint": {"id": "we_1", "url": "https://hooks.example/x", "consecutive_failures": 100}},
     "https://hooks.example/x"),
    ("notify_payment_failed", "payment.failed",
     {"reference": "recharge:p:2026", "amount_micros": 25_000_000, "currency": "USD", "code": "card_declined",
      "message": "Your card was declined."}, "25.00 USD"),
    ("notify_subscription", "subscription.activated", {}, "now active"),
    ("notify_low_balance", "wallet.low_balance", {"balance_micros": 1_500_000, "currency": "USD"}, "1.50 USD"),
    ("notify_tenant_created", "tenant.created", {"tenant": {"name": "Dental"}}, "Dental"),
    ("notify_tenant_payment_failed", "payment.failed", {"payer": "tenant", "invoice_id": "inv_7"}, "inv_7"),
])
def test_notification_templates_render_event_data(template: str, event_type: str, data: dict[str, Any],
                                                  expect: str) -> None:
    values = {"event": {"id": "evt_1", "type": event_type, "created_at": "2026-05-04T14:23:45.123Z"},
              "data": data, "tenant_name": None, "tenant_id": "ten_1", "company_name": "ACME LLC"}
    msg = _parse(render(template, values, brand=BRAND, to="a@b.co", reference="r").message)
    assert expect in _body(msg, "plain") and "ACME Phones" in _body(msg, "html")


def test_the_notifier_rules_by_name() -> None:
    assert rule_for("usage.threshold_reached") is not None
    assert rule_for("usage.threshold_reached").preference == "usage_alerts"  # type: ignore[union-attr]
    assert rule_for("tenant.created").preference == "new_tenant_signups"  # type: ignore[union-attr]
    for always in ("webhook_endpoint.disabled", "payment.failed", "wallet.low_balance",
                   "subscription.updated", "subscription.price_change_scheduled"):
        assert rule_for(always).preference is None  # type: ignore[union-attr]
    assert rule_for("call.completed") is None and rule_for("tenant.updated") is None


def test_a_tenants_declined_card_is_not_mailed_as_the_partners_own() -> None:
    own, tenants = rule_for("payment.failed", "partner"), rule_for("payment.failed", "tenant")
    assert own is not None and tenants is not None
    assert own.template == "notify_payment_failed" and own.preference is None
    assert tenants.template == "notify_tenant_payment_failed" and tenants.preference == "usage_alerts"


def test_the_retry_schedule_ends() -> None:
    delays = [retry_delay(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert delays[:-1] == sorted(delays[:-1]) and all(d is not None for d in delays[:-1])  # type: ignore[type-var]
    assert delays[-1] is None


def test_the_from_header_is_the_brand_address_else_the_platform_one() -> None:
    job = Job(id=1, reference="r", to_address="a@b.co", from_name="ACME, Phones", from_email=None,
              message=b"To: a@b.co\r\n\r\nhi\r\n", attempts=0, max_attempts=8, claimed_at=None)  # type: ignore[arg-type]
    sender, raw = with_from(job, "noreply@platform.example")
    assert sender == "noreply@platform.example"
    assert _parse(raw)["From"] == '"ACME, Phones" <noreply@platform.example>'
    branded = Job(**{**job.__dict__, "from_email": "noreply@acme.example"})
    assert with_from(branded, "noreply@platform.example")[0] == "noreply@acme.example"
