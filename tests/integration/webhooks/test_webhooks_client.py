"""The delivery client against real servers on loopback: kept-alive connections, bounded and
malformed replies, a receiver that drops an idle connection, refused connections, DNS and TLS.
Each scenario runs on asyncio's loop and on uvloop (the worker's)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.webhooks.client import HEAD_LIMIT, Client, DeliveryError, Origin
from controlplane.webhooks.sender import request_head
from controlplane.webhooks.targets import IPAddress, parse_url

LOOPBACK = ipaddress.ip_address("127.0.0.1")
REQUEST = b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def runner(scenario: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as loop_runner:
            loop_runner.run(scenario)
    return runner


async def no_dns(host: str, port: int) -> list[IPAddress]:
    raise AssertionError(f"{host} resolved: address literals are not")


def client(resolve: Callable[[str, int], Awaitable[list[IPAddress]]] = no_dns,
           tls: ssl.SSLContext | None = None) -> Client:
    return Client(resolve, tls or ssl.create_default_context(), 512)


def origin(port: int, tls: bool = False, host: str = "127.0.0.1") -> Origin:
    return Origin(tls, host, port, LOOPBACK)


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[int]:
    """A TCP server speaking whatever ``handle`` writes (replies no HTTP library would send)."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def http_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def test_connections_are_kept_alive_between_posts(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        peers: list[object] = []

        async def hook(request: web.Request) -> web.Response:
            peers.append(request.transport.get_extra_info("peername") if request.transport else None)
            return web.Response(status=202, text=(await request.read()).decode())

        async with http_server(hook) as port:
            posts = client()
            replies = [await posts.post(origin(port), REQUEST) for _ in range(5)]
            await posts.close()
        assert [(r.status, r.body, r.truncated) for r in replies] == [(202, b"hi", False)] * 5
        assert len(peers) == 5 and len(set(peers)) == 1
    run(scenario())


def test_a_long_chunked_reply_keeps_its_excerpt_and_drops_the_connection(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        peers: set[object] = set()

        async def chatty(request: web.Request) -> web.StreamResponse:
            peers.add(request.transport.get_extra_info("peername") if request.transport else None)
            response = web.StreamResponse(status=500)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"y" * 1000)
            await asyncio.sleep(0.1)  # the client has the excerpt by now, and stops reading
            with contextlib.suppress(ConnectionError):
                for _ in range(19):
                    await response.write(b"y" * 1000)
                await response.write_eof()
            return response

        async with http_server(chatty) as port:
            posts = client()
            first = await posts.post(origin(port), REQUEST)
            second = await posts.post(origin(port), REQUEST)
            await posts.close()
        assert (first.status, first.body, first.truncated) == (500, b"y" * 512, True)
        assert second == first
        assert len(peers) == 2  # the rest of the first reply was not read: its connection was closed
    run(scenario())


def test_replies_delimited_by_the_end_of_the_connection_and_interim_replies(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        async def old_style(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of it")
            writer.close()

        async with raw_server(old_style) as port:
            reply = await client().post(origin(port), REQUEST)
        assert (reply.status, reply.body, reply.truncated) == (200, b"all of it", False)
    run(scenario())


@pytest.mark.parametrize("reply, error", [
    (b"HTTP/1.1 200 OK\r\nX-Filler: " + b"f" * (HEAD_LIMIT + 10), "Bad response: head over"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", "Bad response:"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "Connection closed"),
    (b"", "Connection closed"),
])
def test_bad_replies_fail_the_attempt(run: Callable[[Coroutine[Any, Any, None]], None], reply: bytes,
                                      error: str) -> None:
    async def scenario() -> None:
        async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(reply)
            await writer.drain()
            writer.close()

        async with raw_server(bad) as port:
            with pytest.raises(DeliveryError) as failed:
                await client().post(origin(port), REQUEST)
        assert str(failed.value).startswith(error)
    run(scenario())


def test_an_idle_connection_the_receiver_dropped_is_retried_once_on_a_new_one(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        requests: list[int] = []

        async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            requests.append(1)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # kept alive, as far as the client knows
            await writer.drain()
            await reader.read(1)  # the next request's first byte: dropped without a reply
            writer.close()

        async with raw_server(one_per_connection) as port:
            posts = client()
            replies = [(await posts.post(origin(port), REQUEST)).status for _ in range(3)]
            await posts.close()
        assert replies == [204, 204, 204]
        assert len(requests) == 3
    run(scenario())


def test_connection_and_resolution_failures_say_what_failed(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def scenario() -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]  # bound, not listening: refused
            with pytest.raises(DeliveryError, match="^Connection failed: Connection refused"):
                await client().post(origin(port), REQUEST)

        async def failing(host: str, port: int) -> list[IPAddress]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        with pytest.raises(DeliveryError, match="^DNS: .*Name or service not known"):
            await client(failing).post(Origin(False, "nowhere.test", 80, None), REQUEST)
    run(scenario())


def test_tls_is_verified(run: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "localhost")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async def hook(request: web.Request) -> web.Response:
            return web.Response(text="secure")

        async with http_server(hook, tls=served) as port:
            with pytest.raises(DeliveryError, match="^TLS: .*CERTIFICATE_VERIFY_FAILED"):
                await client().post(origin(port, tls=True, host="localhost"), REQUEST)
            with pytest.raises(DeliveryError, match="^TLS: .*match"):  # trusted, but not for this name
                await client(tls=trusting).post(origin(port, tls=True, host="other.test"), REQUEST)
            posts = client(tls=trusting)
            reply = await posts.post(origin(port, tls=True, host="localhost"), REQUEST)
            await posts.close()
        assert (reply.status, reply.body) == (200, b"secure")
    run(scenario())


def test_the_request_head_names_the_path_and_the_host_as_the_url_does() -> None:
    def head(url: str) -> str:
        return request_head(parse_url(url, production=False))

    assert head("https://hooks.example.com/in?x=1&y=é") == (
        "POST /in?x=1&y=%C3%A9 HTTP/1.1\r\nHost: hooks.example.com\r\n"
        "User-Agent: controlplane-webhooks/0.1\r\n")
    assert head("https://hooks.example.com").startswith("POST / HTTP/1.1\r\nHost: hooks.example.com\r\n")
    assert head("http://[::1]:8080/a%20b/ü").startswith("POST /a%20b/%C3%BC HTTP/1.1\r\nHost: [::1]:8080\r\n")
    assert "Host: 93.184.216.34:8443\r\n" in head("https://93.184.216.34:8443/")


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
