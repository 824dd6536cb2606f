"""The outbox on real PostgreSQL and a real SMTP server (aiosmtpd): queued in the caller's
transaction, sent with the brand, retried, given up on, and never lost to a kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import yaml

from controlplane.config import MailConfig
from controlplane.mail import store
from controlplane.mail.store import Attachment
from controlplane.mail.worker import MailWorker
from mail_support import PLATFORM_FROM, outbox, partner, set_brand, worker
from smtp_support import free_port, silent_server, smtp_server

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


async def _enqueue(pool: asyncpg.Pool, partner_id: str | None, reference: str, **kw: object) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        return await store.enqueue(conn, partner_id=partner_id, to="billing@tenant.example", template="message",
                                   values={"subject": "Your invoice", "body": "Attached."}, reference=reference,
                                   **kw)  # type: ignore[arg-type]


async def test_a_queued_mail_arrives_from_the_brand_with_its_attachment(pool: asyncpg.Pool) -> None:
    pid = await partner(pool, "ACME Telecom")
    await set_brand(pool, pid, brand_name="ACME Phones", from_email="noreply@acme.example",
                    support_email="help@acme.example", primary_color="#1a73e8")
    await pool.execute("INSERT INTO partner_logos (partner_id, content_type, data, sha256) VALUES ($1, $2, $3, 'x')",
                       pid, "image/png", PNG)
    pdf = Attachment("SUB-2026-000001.pdf", "application/pdf", b"%PDF-1.4\n%fake\n")
    assert await _enqueue(pool, pid, f"test:{pid}:1", attachments=[pdf])
    assert not await _enqueue(pool, pid, f"test:{pid}:1", attachments=[pdf])  # same reference: once
    async with smtp_server() as smtp:
        sender = worker(pool, smtp)
        await sender.run_once()
        [mail] = await smtp.wait_for(1)
    assert mail.mail_from == "noreply@acme.example" and mail.rcpt_tos == ["billing@tenant.example"]
    assert mail.message["From"] == "ACME Phones <noreply@acme.example>"
    assert mail.message["Reply-To"] == "help@acme.example" and mail.message["Subject"] == "Your invoice"
    assert "ACME Phones" in mail.text() and "#1a73e8" in mail.html() and "cid:brand-logo" in mail.html()
    assert mail.attachments() == [("SUB-2026-000001.pdf", "application/pdf", pdf.data)]
    row = await outbox(pool, f"test:{pid}:1")
    assert (row["status"], row["attempts"]) == ("SENT", 1)
    assert mail.message["Message-ID"] == row["message_id"]


async def test_without_a_brand_address_the_platform_sends_in_the_brand_name(pool: asyncpg.Pool) -> None:
    pid = await partner(pool, "Pinedale VoIP")
    assert await _enqueue(pool, pid, f"test:{pid}:plain")
    async with smtp_server() as smtp:
        await worker(pool, smtp).run_once()
        [mail] = await smtp.wait_for(1)
    assert mail.mail_from == PLATFORM_FROM
    assert mail.message["From"] == f"Pinedale VoIP <{PLATFORM_FROM}>"  # brand name defaults to the company


async def test_a_rolled_back_change_queues_nothing(pool: asyncpg.Pool) -> None:
    pid = await partner(pool)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await store.enqueue(conn, partner_id=pid, to="a@tenant.example", template="message",
                                values={"subject": "s", "body": "b"}, reference=f"test:{pid}:rolled")
            raise RuntimeError("the change failed")
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE reference = $1", f"test:{pid}:rolled") == 0
    async with pool.acquire() as conn:
        with pytest.raises(store.NotInTransaction):
            await store.enqueue(conn, partner_id=pid, to="a@tenant.example", template="message",
                                values={"subject": "s", "body": "b"}, reference=f"test:{pid}:loose")
        async with conn.transaction():
            with pytest.raises(ValueError):
                await store.enqueue(conn, partner_id=pid, to="not-an-address", template="message",
                                    values={"subject": "s", "body": "b"}, reference=f"test:{pid}:bad")


async def test_failures_are_retried_with_backoff_then_dead(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE mail_outbox SET status = 'DEAD' WHERE status = 'PENDING'")  # earlier tests' leftovers
    pid = await partner(pool)
    async with pool.acquire() as conn, conn.transaction():
        await store.enqueue(conn, partner_id=pid, to="a@tenant.example", template="message",
                            values={"subject": "s", "body": "b"}, reference=f"test:{pid}:retry", max_attempts=3)
    down = MailWorker(pool=pool, config=MailConfig(host="127.0.0.1", port=free_port(), timeout=2.0))
    await down.run_once()  # nothing listens: connection refused
    row = await outbox(pool, f"test:{pid}:retry")
    assert (row["status"], row["attempts"]) == ("PENDING", 1) and row["last_error"]
    await down.run_once()
    assert (await outbox(pool, f"test:{pid}:retry"))["attempts"] == 1  # not due before its backoff
    async with smtp_server() as smtp:
        up = worker(pool, smtp)
        up.clock.advance(31)  # past the first delay
        down.clock.advance(31)
        await down.run_once()
        assert (await outbox(pool, f"test:{pid}:retry"))["attempts"] == 2
        down.clock.advance(200)
        await down.run_once()
        row = await outbox(pool, f"test:{pid}:retry")
        assert (row["status"], row["attempts"]) == ("DEAD", 3)
        up.clock.advance(10_000)
        await up.run_once()
        assert smtp.messages == []  # a DEAD mail is not sent


async def test_a_refused_recipient_is_permanent(pool: asyncpg.Pool) -> None:
    pid = await partner(pool)
    async with pool.acquire() as conn, conn.transaction():
        await store.enqueue(conn, partner_id=pid, to="nobody@tenant.example", template="message",
                            values={"subject": "s", "body": "b"}, reference=f"test:{pid}:refused")

    class Refusing:
        async def handle_RCPT(self, server: object, session: object, envelope: object, address: str,
                              options: list[str]) -> str:
            return "550 5.1.1 no such user"

    from aiosmtpd.controller import Controller
    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        refused = MailWorker(pool=pool, config=MailConfig(host="127.0.0.1", port=controller.port, timeout=5.0))
        await refused.run_once()
    finally:
        controller.stop()
    row = await outbox(pool, f"test:{pid}:refused")
    assert (row["status"], row["attempts"]) == ("DEAD", 1) and "550" in row["last_error"]


async def test_disabled_mail_keeps_mails_queued(pool: asyncpg.Pool) -> None:
    pid = await partner(pool)
    assert await _enqueue(pool, pid, f"test:{pid}:disabled")
    disabled = MailWorker(pool=pool, config=MailConfig(host=None))
    assert not disabled.enabled
    await asyncio.wait_for(disabled.run(), 5)  # says so and returns: sends nothing
    assert (await outbox(pool, f"test:{pid}:disabled"))["status"] == "PENDING"


async def test_a_worker_killed_mid_send_loses_nothing(pool: asyncpg.Pool, database_dsn: str, tmp_path: Path) -> None:
    """kill -9 of a worker process holding the claim: once its lease lapses, another sends the mail."""
    await pool.execute("UPDATE mail_outbox SET status = 'DEAD' WHERE status = 'PENDING'")
    pid = await partner(pool, "Killed Co")
    reference = f"test:{pid}:killed"
    assert await _enqueue(pool, pid, reference)
    with silent_server() as (host, port):  # a relay that accepts and never answers: the send hangs
        config = {"data_dir": str(tmp_path / "var"), "database": {"dsn": database_dsn, "pool_max": 3},
                  "mail": {"host": host, "port": port, "timeout": 60, "from_address": PLATFORM_FROM},
                  "logging": {"format": "json"}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        process = subprocess.Popen([sys.executable, "-m", "controlplane.mail", "-c", str(tmp_path / "config.yaml")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
        try:
            for _ in range(300):
                row = await outbox(pool, reference)
                if row["lease_owner"] is not None or process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert row["lease_owner"] is not None, "the worker process never claimed the mail"
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    row = await outbox(pool, reference)
    assert (row["status"], row["attempts"]) == ("PENDING", 0) and row["lease_owner"] is not None
    async with smtp_server() as smtp:
        survivor = worker(pool, smtp)
        await survivor.run_once()
        assert smtp.messages == []  # the dead worker's lease still holds: no double send while it may run
        survivor.clock.advance(60 + 30 + 1)  # past timeout + margin
        await survivor.run_once()
        [mail] = await smtp.wait_for(1)
    assert mail.message["Message-ID"] == row["message_id"]
    row = await outbox(pool, reference)
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("SENT", 1, None)
