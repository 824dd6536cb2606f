"""The delivery client: one signed POST per attempt, over HTTP/1.1 connections kept alive.

Why not aiohttp's ClientSession: a delivery needs a POST with a body, a status and a bounded
excerpt of the reply; no redirects, cookies, proxies, compression or streaming. The session's
per-request machinery around that (request and response objects, header multidicts, the cookie
jar, a writer task, trace hooks) cost 0.11 ms of CPU per post here, against 0.02-0.03 ms for a
protocol that writes one buffer and lets llhttp (httptools) parse the reply: on two cores that
CPU is taken from the receiver and PostgreSQL (docs/performance.md, "Webhooks").

What a hostile receiver can do is bounded: the reply's head is limited to ``HEAD_LIMIT`` bytes,
its body is read to ``excerpt`` bytes and the connection dropped past that, a malformed reply
fails the attempt, and the caller bounds the whole exchange with its timeout.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass
from typing import cast

import httptools

from controlplane.webhooks.resolver import Resolve
from controlplane.webhooks.targets import IPAddress

HEAD_LIMIT = 16 * 1024
# An idle connection older than this is closed, not reused: a receiver's own keep-alive timeout
# is often 5 s, and a request written as it closes is lost to a reset.
IDLE_S = 4.0


class DeliveryError(Exception):
    """The attempt failed; ``str()`` is what the debugger shows."""


class Closed(DeliveryError):
    def __init__(self) -> None:
        super().__init__("Connection closed")


class ConnectFailed(DeliveryError):
    def __init__(self, error: OSError) -> None:
        # asyncio's message names the address (it is in the URL); the reason is the errno's
        super().__init__(f"Connection failed: {os.strerror(error.errno) if error.errno else error}")


class DnsFailed(DeliveryError):
    def __init__(self, error: OSError) -> None:
        super().__init__(f"DNS: {error}")


class TlsFailed(DeliveryError):
    def __init__(self, error: ssl.SSLError) -> None:
        super().__init__(f"TLS: {error}")


@dataclass(frozen=True)
class Origin:
    """Where a connection goes: connections are kept and reused per origin."""

    tls: bool
    host: str  # the name (or address literal) the URL gave: TLS's server name
    port: int
    ip: IPAddress | None  # an address literal: no resolution


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes  # at most the excerpt's length
    truncated: bool


class _Connection(asyncio.Protocol):
    """One connection; one exchange at a time. llhttp calls the ``on_*`` methods from ``feed_data``."""

    def __init__(self, excerpt: int) -> None:
        self._excerpt = excerpt
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self.alive = True
        self.idle_since = 0.0
        self._start()

    def _start(self) -> None:
        self._head = 0          # bytes read before the head was complete
        self._status = 0        # 0 until the head is complete
        self._framed = False    # Content-Length or chunked: the end of the body is known
        self._body: list[bytes] = []
        self._size = 0
        self._complete = False
        self._keep = False
        self.received = False   # any byte of a reply to the current request

    def exchange(self, request: bytes) -> asyncio.Future[Response]:
        assert self._transport is not None and self._waiter is None
        # A parser per request: nothing a receiver sent after its last reply carries over.
        self._parser = httptools.HttpResponseParser(self)
        self._start()
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return self._waiter

    def reusable(self, now: float) -> bool:
        """Open, and idle for less than ``IDLE_S``."""
        return self.alive and now - self.idle_since < IDLE_S

    def close(self) -> None:
        self.alive = False
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a receiver talking out of turn
            self.close()
            return
        self.received = True
        if not self._status:
            self._head += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._complete = True  # a 101: what follows is not HTTP; the status is the outcome
            self.alive = False
        except httptools.HttpParserError as exc:
            self._fail(DeliveryError(f"Bad response: {exc}"))
            return
        if not self._status and self._head > HEAD_LIMIT:  # still no end of the head
            self._fail(DeliveryError(f"Bad response: head over {HEAD_LIMIT} bytes"))
        elif self._complete:
            self._finish(keep=self.alive and self._keep)
        elif self._size > self._excerpt:
            self._finish(keep=False)  # the excerpt is all we keep: the rest is not worth reading

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self._waiter is not None:
            if self._status and not self._framed:
                self._finish(keep=False)  # the body ran to the end of the connection: complete
            else:
                self._fail(Closed())

    # llhttp callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self._size <= self._excerpt:
            self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:  # interim (100 Continue): the reply follows
            self._start()
            self.received = True
        else:
            self._complete = True
            self._keep = self._parser.should_keep_alive()  # only valid here: reset once the message ends

    def _finish(self, keep: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if not keep:
            self.close()
        body = b"".join(self._body)
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, body[:self._excerpt], len(body) > self._excerpt))

    def _fail(self, error: DeliveryError) -> None:
        waiter, self._waiter = self._waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class Client:
    """Connections per origin, kept alive between attempts. The caller bounds each ``post`` in time."""

    def __init__(self, resolve: Resolve, tls: ssl.SSLContext, excerpt: int) -> None:
        self._resolve = resolve  # the addresses a name may be reached at (checked by the caller's rules)
        self._tls = tls
        self._excerpt = excerpt
        self._idle: dict[Origin, list[_Connection]] = {}
        self._swept = time.monotonic()

    async def post(self, origin: Origin, request: bytes) -> Response:
        """Send ``request`` (the whole HTTP/1.1 request) and read the reply."""
        connection = self._reuse(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, request)
            except Closed:
                if connection.received:
                    raise
                # Closed before any reply: the receiver dropped the idle connection as we wrote.
                # Once more on a new connection (the receiver may see it twice: at least once).
        return await self._exchange(origin, await self._connect(origin), request)

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def _exchange(self, origin: Origin, connection: _Connection, request: bytes) -> Response:
        try:
            response = await connection.exchange(request)
        except BaseException:  # a failure, or the caller's timeout: the connection's state is unknown
            connection.close()
            raise
        if connection.alive:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(connection)
        return response

    def _reuse(self, origin: Origin) -> _Connection | None:
        now = time.monotonic()
        if now - self._swept > IDLE_S:
            self._sweep(now)
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be closed
            if connection.reusable(now):
                return connection
            connection.close()
        return None

    def _sweep(self, now: float) -> None:
        """Close what has idled too long, for every origin (one that is no longer posted to too)."""
        self._swept = now
        for origin in list(self._idle):
            kept = [c for c in self._idle[origin] if c.reusable(now)]
            for connection in self._idle[origin]:
                if connection not in kept:
                    connection.close()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    async def _connect(self, origin: Origin) -> _Connection:
        if origin.ip is not None:
            addresses = [origin.ip]
        else:
            try:
                addresses = await self._resolve(origin.host, origin.port)
            except OSError as exc:
                raise DnsFailed(exc) from None
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in addresses:  # the addresses checked, in the resolver's order
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._excerpt), str(address), origin.port,
                    ssl=self._tls if origin.tls else None, server_hostname=origin.host if origin.tls else None)
                return connection
            except ssl.SSLError as exc:
                raise TlsFailed(exc) from None
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise ConnectFailed(failure)
