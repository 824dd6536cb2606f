"""A real SMTP server for tests: aiosmtpd on a free loopback port, the messages parsed.

    async with smtp_server() as smtp:
        config = MailConfig(host=smtp.host, port=smtp.port, from_address="noreply@platform.test")
        ...
        [received] = await smtp.wait_for(1)
        assert received.message["From"] == "ACME <noreply@acme.test>"

Also ``silent_server()``: a TCP listener that accepts and never answers (a relay that hangs),
to catch a worker in the middle of an attempt.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())

    def attachments(self) -> list[tuple[str | None, str, bytes]]:
        """(filename, content type, bytes) of each attachment (inline images excluded)."""
        return [(a.get_filename(), a.get_content_type(), a.get_payload(decode=True))
                for a in self.message.iter_attachments()
                if a.get_content_disposition() == "attachment"]


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, parsed))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: _Handler

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """At least ``count`` messages, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} messages received, {count} expected")
            await asyncio.sleep(0.05)
        return self.messages


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def smtp_server() -> AsyncIterator[SmtpServer]:
    handler = _Handler()
    controller = Controller(handler, hostname=HOST, port=free_port())
    controller.start()  # its own thread and loop
    try:
        yield SmtpServer(HOST, controller.port, handler)
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[tuple[str, int]]:
    """A listener that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield HOST, int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
