"""The monthly report mail on a real PostgreSQL and a real SMTP server (aiosmtpd): sent on the 1st in
the partner's zone, once per partner and month, only when the partner's "monthly reports" toggle is
on, with the 12-month revenue chart attached as a PNG that decodes and follows the figures."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import asyncpg
from mail_support import worker
from PIL import Image, ImageChops
from reports_world import generate, load
from smtp_support import smtp_server

from controlplane.reports import monthly
from controlplane.reports.chart import revenue_chart
from controlplane.reports.services import ReportServices

FIRST_LOCAL = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)  # 00:30 on Dec 1 in New York


def _nov_cash(h: object) -> int:
    from reports_world import NY, History

    assert isinstance(h, History)
    ours = {i.id for i in h.invoices if i.partner_id == h.partner_id}
    return sum((p.amount if p.kind == "payment" else -p.amount) for p in h.payments
               if p.invoice_id in ours and p.at.astimezone(NY).date().strftime("%Y-%m") == "2026-11")


async def test_the_monthly_report_is_mailed_once_on_the_local_1st_with_a_chart(pool: asyncpg.Pool) -> None:
    h = generate()
    async with pool.acquire() as conn, conn.transaction():
        await load(conn, h)
    services = ReportServices(pool, "USD")
    # Not in the middle of a month, nor on Nov 30 23:30 in New York (already Dec 1 in UTC: the other
    # partner's zone, whose toggle is off).
    assert await monthly.send_due(services, datetime(2026, 11, 20, 15, tzinfo=UTC)) == []
    assert await monthly.send_due(services, FIRST_LOCAL - timedelta(hours=1)) == []
    assert await monthly.send_due(services, FIRST_LOCAL) == ["reports:monthly:ptr_rep_main:2026-11"]
    # the job again, later that day and a day later: nothing more
    assert await monthly.send_due(services, FIRST_LOCAL + timedelta(hours=3)) == []
    assert await monthly.send_due(services, FIRST_LOCAL + timedelta(days=1)) == []
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE template = 'monthly_report'") == 1

    async with smtp_server() as smtp:
        await worker(pool, smtp).run_once()
        [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["owner@acme.example"]
    assert mail.message["From"] == "Acme Phones <reports@acme.example>"
    cents = _nov_cash(h) // 10_000
    revenue = f"{cents // 100:,}.{cents % 100:02d} USD"
    assert mail.message["Subject"] == f"Acme Phones monthly report, November 2026: {revenue} collected"
    assert f"Revenue collected: {revenue}" in mail.text() and "Top tenants by revenue:" in mail.text()
    [(name, content_type, png)] = mail.attachments()
    assert (name, content_type) == ("revenue-2026-11.png", "image/png")
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size == (800, 320)

    # The same figures give the same image; one month's revenue changed gives another one.
    made = await monthly.content(services, h.partner_id, "America/New_York", date(2026, 11, 1), FIRST_LOCAL)
    bars = [(m.month, m.revenue_micros) for m in made.trend]
    assert revenue_chart(bars, "USD") == png
    invoice_id = next(i.id for i in h.invoices if i.partner_id == h.partner_id and i.status == "PAID")
    await pool.execute("INSERT INTO tenant_invoice_payments (invoice_id, kind, reference, amount_micros, created_at)"
                       " VALUES ($1, 'payment', 'extra', 900000000, '2026-10-15T12:00Z')", invoice_id)
    changed = await monthly.content(services, h.partner_id, "America/New_York", date(2026, 11, 1), FIRST_LOCAL)
    new_bars = [(m.month, m.revenue_micros) for m in changed.trend]
    assert [b for b in new_bars if b not in bars] == [("2026-10", dict(bars)["2026-10"] + 900_000_000)]
    other = Image.open(io.BytesIO(revenue_chart(new_bars, "USD")))
    other.load()
    assert other.size == image.size
    assert ImageChops.difference(image.convert("RGB"), other.convert("RGB")).getbbox() is not None


async def test_no_report_when_the_partner_turned_monthly_reports_off(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE partner_brand SET notify_monthly_reports = false WHERE partner_id = 'ptr_rep_main'")
    await pool.execute("DELETE FROM mail_outbox WHERE template = 'monthly_report'")
    assert await monthly.send_due(ReportServices(pool, "USD"), FIRST_LOCAL) == []
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE template = 'monthly_report'") == 0
