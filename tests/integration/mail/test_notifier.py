"""The notifier on real PostgreSQL and aiosmtpd: committed events -> the partner's billing email,
per the preferences, exactly one mail per event whatever runs twice."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from controlplane.mail import notifier
from controlplane.webhooks import schedule
from mail_support import emit_sequenced, partner, set_brand, worker
from smtp_support import smtp_server
from webhooks_support import emit_one, endpoint, error_500, receiver, running_worker, settings

USAGE = {"tenant_id": "ten_x", "cap": "monthly_minutes", "used": 4800, "limit": 6000, "threshold_pct": 80,
         "cycle_start": "2026-05-01T00:00:00+00:00", "unit": "seconds"}


async def _drain(pool: asyncpg.Pool) -> None:
    while await notifier.step(pool):
        pass


async def _mails_for(pool: asyncpg.Pool, event_id: str) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE reference = $1", f"event:{event_id}")
    return count


async def test_a_usage_alert_mails_the_partner_when_the_preference_is_on(pool: asyncpg.Pool) -> None:
    await _drain(pool)
    pid = await partner(pool, "ACME Telecom")
    await set_brand(pool, pid, billing_email="billing@acme.example", brand_name="ACME Phones")
    event_id = await emit_sequenced(pool, "usage.threshold_reached", pid, USAGE)
    await _drain(pool)
    await _drain(pool)  # a second pass (or a second daemon) mails nothing more
    assert await _mails_for(pool, event_id) == 1
    async with smtp_server() as smtp:
        await worker(pool, smtp).run_once()
        [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["billing@acme.example"]
    assert mail.message["Subject"] == "Usage alert: ten_x (monthly_minutes)"
    assert "reached 80% of its limit" in mail.text() and "4800 of 6000" in mail.text()
    assert mail.message["From"].addresses[0].display_name == "ACME Phones"


async def test_no_usage_mail_when_the_preference_is_off(pool: asyncpg.Pool) -> None:
    await _drain(pool)
    pid = await partner(pool)
    await set_brand(pool, pid, billing_email="billing@off.example", notify_usage_alerts=False)
    threshold = await emit_sequenced(pool, "usage.threshold_reached", pid, USAGE)
    cap = await emit_sequenced(pool, "usage.cap_reached", pid, {**USAGE, "auto_suspend": False})
    await _drain(pool)
    assert await _mails_for(pool, threshold) == 0 and await _mails_for(pool, cap) == 0
    assert await pool.fetchval("SELECT position FROM mail_notifier_cursor") == await pool.fetchval(
        "SELECT max(position) FROM events")  # passed, not stuck


async def test_a_disabled_webhook_endpoint_always_mails(pool: asyncpg.Pool) -> None:
    await _drain(pool)
    pid = await partner(pool)
    # every toggle off: this one is not a preference
    await set_brand(pool, pid, billing_email="ops@hooks.example", notify_usage_alerts=False,
                    notify_new_tenant_signups=False, notify_monthly_reports=False, notify_system_updates=False)
    event_id = await emit_sequenced(pool, "webhook_endpoint.disabled", pid, {"webhook_endpoint": {
        "id": "we_1", "url": "https://hooks.example/in", "description": "", "consecutive_failures": 100,
        "disabled_reason": "consecutive_failures"}})
    await _drain(pool)
    async with smtp_server() as smtp:
        await worker(pool, smtp).run_once()
        [mail] = await smtp.wait_for(1)
    assert await _mails_for(pool, event_id) == 1
    assert mail.message["Subject"] == "Webhook endpoint disabled: https://hooks.example/in"
    assert "100 failed deliveries" in mail.text()


async def test_tenant_signups_follow_their_preference_and_other_events_are_ignored(pool: asyncpg.Pool) -> None:
    await _drain(pool)
    pid = await partner(pool)
    await set_brand(pool, pid, billing_email="b@signups.example")
    off = await emit_sequenced(pool, "tenant.created", pid, {"tenant": {"name": "Dental"}})  # default: off
    ignored = await emit_sequenced(pool, "call.completed", pid, {"call_id": "c1"})
    await _drain(pool)
    await set_brand(pool, pid, notify_new_tenant_signups=True)
    on = await emit_sequenced(pool, "tenant.created", pid, {"tenant": {"name": "Dental"}})
    await _drain(pool)
    assert [await _mails_for(pool, e) for e in (off, ignored, on)] == [0, 0, 1]


async def test_no_billing_email_no_mail_and_the_cursor_moves_on(pool: asyncpg.Pool) -> None:
    await _drain(pool)
    pid = await partner(pool)
    event_id = await emit_sequenced(pool, "payment.failed", pid, {"reference": "x", "amount_micros": 1,
                                                                  "currency": "USD", "code": "c", "message": "m"})
    await _drain(pool)
    assert await _mails_for(pool, event_id) == 0
    assert await pool.fetchval("SELECT position FROM mail_notifier_cursor") == await pool.fetchval(
        "SELECT max(position) FROM events")


@pytest.mark.parametrize(("event_type", "data", "subject"), [
    ("payment.failed", {"reference": "recharge:p:2026-05-04T14", "amount_micros": 25_000_000, "currency": "USD",
                        "code": "card_declined", "message": "Your card was declined."},
     "Payment failed: Your card was declined."),
    ("wallet.low_balance", {"balance_micros": 1_500_000, "currency": "USD"}, "Your wallet balance is low"),
    ("subscription.activated", {"status": "ACTIVE"}, "Your subscription is active"),
])
async def test_account_events_always_mail(pool: asyncpg.Pool, event_type: str, data: dict[str, object],
                                          subject: str) -> None:
    await _drain(pool)
    await pool.execute("UPDATE mail_outbox SET status = 'DEAD' WHERE status = 'PENDING'")
    pid = await partner(pool)
    await set_brand(pool, pid, billing_email="acct@always.example", notify_usage_alerts=False,
                    notify_new_tenant_signups=False, notify_monthly_reports=False, notify_system_updates=False)
    event_id = await emit_sequenced(pool, event_type, pid, data)
    await _drain(pool)
    assert await _mails_for(pool, event_id) == 1
    async with smtp_server() as smtp:
        await worker(pool, smtp).run_once()
        [mail] = await smtp.wait_for(1)
    assert mail.message["Subject"] == subject and mail.rcpt_tos == ["acct@always.example"]


async def test_an_endpoint_auto_disabled_by_the_webhook_worker_emails_the_partner(pool: asyncpg.Pool) -> None:
    """The whole chain, each part running as in the daemon: a failing delivery trips the endpoint,
    the webhook worker emits and sequences webhook_endpoint.disabled, the notifier queues, the
    mail worker sends to aiosmtpd."""
    await _drain(pool)
    await pool.execute("UPDATE mail_outbox SET status = 'DEAD' WHERE status = 'PENDING'")
    pid = await partner(pool, "Hooked")
    await set_brand(pool, pid, billing_email="dev@hooked.example")
    async with receiver() as hooks, smtp_server() as smtp:
        ep = await endpoint(pool, pid, hooks.on("/fail", error_500))
        await pool.execute("UPDATE webhook_endpoints SET consecutive_failures = $2 WHERE id = $1",
                           ep.id, schedule.AUTO_DISABLE_AFTER - 1)
        mailer, follower = worker(pool, smtp), notifier.Notifier(pool, poll_interval=0.1)
        mailer.poll_interval = 0.1
        tasks = [asyncio.create_task(mailer.run()), asyncio.create_task(follower.run())]
        try:
            async with running_worker(pool, settings()):
                await emit_one(pool, pid, "tenant.updated")
                [mail] = await smtp.wait_for(1, timeout=20)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert mail.rcpt_tos == ["dev@hooked.example"]
    assert mail.message["Subject"] == f"Webhook endpoint disabled: {hooks.url('/fail')}"
    assert mail.message["From"].addresses[0].display_name == "Hooked"
    assert follower.errors == 0 and mailer.errors == 0
