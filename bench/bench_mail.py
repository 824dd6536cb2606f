"""Email outbox benchmark: mails/s through the outbox worker against a bare aiosmtplib client.

Run: .venv/bin/python bench/bench_mail.py [--mails 2000] [--attachment-kb 30]
(under a minute; starts its own PostgreSQL)

N invoice mails (template ``tenant_invoice``, a ~30 KB PDF-sized attachment of
incompressible bytes, as a compressed PDF is) are queued in the outbox with
``mail.store.enqueue``, as invoice delivery queues them. Then the worker exactly as deployed
(``python -m controlplane.mail``, its own process, its own concurrency of 4) sends them to
a real aiosmtpd on loopback (another process, which only counts: parsing 2,000 messages
there would make the server the bottleneck of both runs). Rate = mails the server accepted
/ time between its first and last acceptance (the worker's start-up is left out, printed).
The baseline is a bare ``aiosmtplib.send`` (the call the worker's sender makes: one
connection per mail) in this process, the same message bytes, to the same server, with the
same concurrency (4), run before and after the worker: the ratio is taken against the
faster of the two, so load that comes and goes cannot flatter the worker.
Targets: ratio >= 0.5 (the worker also claims each mail under a lease and records it SENT:
two PostgreSQL round trips per mail and a claim per batch of 4; docs/scale.md), every
mail accepted once (distinct recipients = N), every mail recorded SENT, and one received
mail parsed: its attachment is the queued bytes.
Exits 1 if a target is missed (bench/verdict.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import aiosmtplib  # noqa: E402
import asyncpg  # noqa: E402
from cpu import cpu_ms  # noqa: E402
from scratch_db import scratch_database  # noqa: E402
from verdict import Verdicts  # noqa: E402

from controlplane import eventloop  # noqa: E402
from controlplane.mail import store  # noqa: E402
from controlplane.mail.sender import with_from  # noqa: E402
from controlplane.mail.worker import MailWorker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
FROM = "noreply@platform.test"
CONCURRENCY = MailWorker.concurrency  # the deployed worker's mails in flight (not configurable)
TARGET_RATIO = 0.5
DEADLINE_S = 120.0


# --- the SMTP server, in its own process: aiosmtpd, counting, commands on stdin ---------------

def server_main() -> None:
    from aiosmtpd.controller import Controller

    lock = threading.Lock()
    stamps: list[float] = []
    recipients: set[str] = set()
    sample: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with lock:
                stamps.append(time.monotonic())
                recipients.update(envelope.rcpt_tos)
                if not sample:
                    sample.append(bytes(envelope.original_content or envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # a free port: the controller's start-up probe needs a real one
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    controller = Controller(Handler(), hostname=HOST, port=port)
    controller.start()  # its own thread and loop
    print(json.dumps({"port": controller.port}), flush=True)
    for line in sys.stdin:  # "stats", "sample", "reset"
        with lock:
            if line.strip() == "stats":
                span = stamps[-1] - stamps[0] if stamps else 0.0
                answer: dict[str, Any] = {"total": len(stamps), "distinct": len(recipients), "span": span}
            elif line.strip() == "sample":
                answer = {"raw": sample[0].decode("latin-1") if sample else ""}
            else:
                stamps.clear()
                recipients.clear()
                sample.clear()
                answer = {}
        print(json.dumps(answer), flush=True)
    controller.stop()


class Server:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port, self.pid = proc, port, proc.pid

    @classmethod
    async def start(cls) -> Server:
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--server",
                                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        port = json.loads(await proc.stdout.readline())["port"]
        return cls(proc, int(port))

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        answer: dict[str, Any] = json.loads(await self.proc.stdout.readline())
        return answer

    async def wait_total(self, total: int, timeout: float) -> dict[str, Any]:
        """The stats once ``total`` mails arrived, or at the deadline (the caller checks)."""
        deadline = time.monotonic() + timeout
        while True:
            got = await self.ask("stats")
            if got["total"] >= total or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


# --- queueing, the worker, the bare client ------------------------------------------------------

def invoice_pdf(kb: int) -> bytes:
    """Bytes the size of an invoice PDF; random, so base64 and transfer cost what a real one does."""
    return b"%PDF-1.7\n" + random.Random(19).randbytes(kb * 1024 - 9)


async def enqueue_all(pool: asyncpg.Pool, count: int, pdf: bytes) -> None:
    attachment = store.Attachment("INV-2026-000001.pdf", "application/pdf", pdf)
    async with pool.acquire() as conn:
        for start in range(0, count, 500):
            async with conn.transaction():
                for i in range(start, min(start + 500, count)):
                    invoice = {"tenant_name": f"Tenant {i}", "number": f"INV-2026-{i:06d}", "period":
                               "2026-11-01 to 2026-11-30", "total": "$42.17", "amount_due": "$42.17",
                               "due_on": "2026-12-15"}
                    queued = await store.enqueue(conn, partner_id=None, to=f"billing{i}@tenant.test",
                                                 template="tenant_invoice", values={"invoice": invoice},
                                                 reference=f"bench:{i}", attachments=[attachment])
                    assert queued


def start_worker(dsn: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CONTROLPLANE_DATABASE__DSN=dsn, CONTROLPLANE_DATA_DIR=data_dir,
               CONTROLPLANE_MAIL__HOST=HOST, CONTROLPLANE_MAIL__PORT=str(port),
               CONTROLPLANE_MAIL__FROM_ADDRESS=FROM, CONTROLPLANE_MAIL__TIMEOUT="10",
               CONTROLPLANE_LOGGING__LEVEL="warning", CONTROLPLANE_LOGGING__FORMAT="json")
    return subprocess.Popen([sys.executable, "-m", "controlplane.mail"], env=env, cwd=ROOT)


async def queued_messages(pool: asyncpg.Pool) -> list[tuple[str, str, bytes]]:
    """(envelope sender, recipient, bytes) of every mail, as the worker's sender puts them on the wire."""
    rows = await pool.fetch("SELECT id, reference, to_address, from_name, from_email, message, attempts,"
                            " max_attempts, now() AS claimed_at FROM mail_outbox ORDER BY id")
    out = []
    for r in rows:
        job = store.Job(id=r["id"], reference=r["reference"], to_address=r["to_address"], from_name=r["from_name"],
                        from_email=r["from_email"], message=bytes(r["message"]), attempts=r["attempts"],
                        max_attempts=r["max_attempts"], claimed_at=r["claimed_at"])
        sender, message = with_from(job, FROM)
        out.append((sender, job.to_address, message))
    return out


async def bare_client(port: int, messages: list[tuple[str, str, bytes]]) -> None:
    queue = iter(messages)

    async def runner() -> None:
        for sender, to, message in queue:
            await aiosmtplib.send(message, sender=sender, recipients=[to], hostname=HOST, port=port, timeout=10)

    await asyncio.gather(*(runner() for _ in range(CONCURRENCY)))


async def bare_run(server: Server, messages: list[tuple[str, str, bytes]], label: str) -> tuple[float, float]:
    """(mails/s at the server, client CPU ms per mail) of one bare-client run."""
    await server.ask("reset")
    cpu, server_cpu = cpu_ms(os.getpid()), cpu_ms(server.pid)
    await bare_client(server.port, messages)
    cpu = cpu_ms(os.getpid()) - cpu
    got = await server.wait_total(len(messages), 10)
    server_cpu = cpu_ms(server.pid) - server_cpu
    rate = got["total"] / got["span"] if got["span"] else 0.0
    print(f"bare aiosmtplib client {label}: {got['total']} accepted, {rate:,.0f} mails/s "
          f"(span {got['span']:.2f} s), CPU {cpu / max(got['total'], 1):.3f} ms/mail, "
          f"server {server_cpu / max(got['total'], 1):.3f} ms/mail")
    return rate, cpu / max(got["total"], 1)


async def measure(mails: int, attachment_kb: int, verdicts: Verdicts) -> None:
    async with scratch_database("bench_mail_") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        assert pool is not None
        server = await Server.start()
        try:
            pdf = invoice_pdf(attachment_kb)
            t0 = time.perf_counter()
            await enqueue_all(pool, mails, pdf)
            queue_s = time.perf_counter() - t0
            messages = await queued_messages(pool)
            size = sum(len(m) for _, _, m in messages) / len(messages)
            print(f"queued {mails} mails ({size / 1024:.1f} KB each on the wire) in {queue_s:.1f} s: "
                  f"{mails / queue_s:,.0f} mails/s rendered and inserted")
            verdicts.info("mails queued per second (render + insert, one process)", mails / queue_s, "/s")

            before, _ = await bare_run(server, messages, "before the worker")
            await server.ask("reset")
            server_cpu = cpu_ms(server.pid)
            with tempfile.TemporaryDirectory(prefix="bench_mail_data_") as data_dir:
                worker = start_worker(dsn, server.port, data_dir)
                started = time.perf_counter()
                try:
                    got = await server.wait_total(mails, DEADLINE_S)
                finally:
                    worker_cpu = cpu_ms(worker.pid)  # its whole life: start-up included
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(10)
            wall = time.perf_counter() - started
            server_cpu = cpu_ms(server.pid) - server_cpu
            rate = got["total"] / got["span"] if got["span"] else 0.0
            sent = await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE status = 'SENT'")
            print(f"outbox worker (python -m controlplane.mail, {CONCURRENCY} in flight): {got['total']} accepted,"
                  f" {got['distinct']} distinct recipients, {sent} recorded SENT, {rate:,.0f} mails/s "
                  f"(span {got['span']:.2f} s; {wall:.1f} s incl. start-up), "
                  f"CPU {worker_cpu / max(got['total'], 1):.3f} ms/mail (start-up included), "
                  f"server {server_cpu / max(got['total'], 1):.3f} ms/mail")
            raw = (await server.ask("sample"))["raw"].encode("latin-1")
            after, bare_cpu = await bare_run(server, messages, "after the worker")
        finally:
            await server.stop()
            await pool.close()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    attached = [a.get_payload(decode=True) for a in parsed.iter_attachments()]
    bare = max(before, after)
    print(f"ratio worker / faster bare run: {rate / bare:.2f}")
    verdicts.exactly(f"mails not accepted by the server within {DEADLINE_S:.0f} s", mails - got["total"], 0)
    verdicts.exactly("mails missing among the accepted (N - distinct recipients)", mails - got["distinct"], 0)
    verdicts.exactly("mails accepted twice (no worker was killed)", got["total"] - got["distinct"], 0)
    verdicts.exactly("mails not recorded SENT", mails - sent, 0)
    verdicts.exactly("sampled mail whose attachment differs from the queued PDF", 0 if attached == [pdf] else 1, 0)
    verdicts.info("outbox worker CPU per mail (start-up included)", worker_cpu / max(got["total"], 1), "ms")
    verdicts.info("bare client CPU per mail", bare_cpu, "ms")
    verdicts.info("outbox worker mails/s", rate, "/s")
    verdicts.info("bare aiosmtplib client mails/s (faster of before/after)", bare, "/s")
    verdicts.at_least("outbox worker / bare client", rate / bare, TARGET_RATIO)


async def main(mails: int, attachment_kb: int) -> int:
    verdicts = Verdicts("bench_mail")
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} (2 cores shared: figures under load)")
    verdicts.info("load average (1 min) at start", load)
    return await verdicts.measured("run", None, lambda: measure(mails, attachment_kb, verdicts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--attachment-kb", type=int, default=30)
    args = parser.parse_args()
    if args.server:
        server_main()
    else:
        # The bare client runs on the loop the worker runs on (uvloop when installed).
        sys.exit(eventloop.run(main(args.mails, args.attachment_kb)))
