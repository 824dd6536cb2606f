"""localstripe (PyPI: a stateful fake Stripe server) for tests, started like PostgreSQL.

``localstripe_server()`` runs it as a subprocess on a free loopback port: the listening
socket is bound here (127.0.0.1 only, no port race) and handed to the child, which serves
localstripe's own aiohttp app on it. Its CLI binds every interface (``::``) and pickles its
state into a fixed /tmp file after each write; the child turns that off, so test processes
running side by side share nothing. Real HTTP, the real ``stripe`` SDK.

localstripe ignores ``Idempotency-Key``; the child adds Stripe's behaviour (a POST sent again
with the same key replays the first answer; with other parameters it is refused), so a test
proves a charge retried after a crash is made once at the provider, not only in our rows.

A missing localstripe skips on a developer's machine and fails under CI=true
(``harness.unavailable``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pytest
import stripe
from harness import unavailable

from controlplane.config import PaymentsConfig
from controlplane.payments.stripe_provider import StripeProvider

SECRET_KEY = "sk_test_localstripe"
# Stripe's test cards: one that charges, one refused (localstripe refuses it on attach, as
# Stripe does), one that attaches and is declined when charged (auto-recharge declines).
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_DECLINED_ON_CHARGE = "4000000000000341"
START_SECONDS = 20.0

_CHILD = """
import hashlib, socket, sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None  # no shared /tmp/localstripe.pickle

# Stripe's idempotency, which localstripe lacks: a POST sent again with the same
# Idempotency-Key gets the first answer replayed (Idempotent-Replayed: true) and changes
# nothing; with other parameters, a 400 idempotency_error; while the first is running, 409.
replies, running = {}, set()

@web.middleware
async def idempotency(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    slot = (request.headers.get("Authorization"), key)
    digest = hashlib.sha256(request.path.encode() + b"?" + body).hexdigest()
    if slot in running:
        return web.json_response({"error": {"type": "idempotency_error", "message": "in progress"}}, status=409)
    if slot in replies:
        first, status, text, ctype = replies[slot]
        if first != digest:
            return web.json_response({"error": {"type": "idempotency_error", "message":
                "Keys for idempotent requests can only be used with the same parameters they were first used with."}},
                status=400)
        return web.Response(status=status, text=text, content_type=ctype, headers={"Idempotent-Replayed": "true"})
    running.add(slot)
    try:
        response = await handler(request)
        if response.status < 500:
            replies[slot] = (digest, response.status, response.text, response.content_type)
        return response
    finally:
        running.discard(slot)

server.app.middlewares.insert(0, idempotency)
sock = socket.socket(fileno=int(sys.argv[1]))
web.run_app(server.app, sock=sock, access_log=None, print=None, handle_signals=True)
"""


@dataclass
class LocalStripe:
    base: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    secret_key: str = SECRET_KEY

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(self.secret_key, base_addresses={"api": self.base}, max_network_retries=0)

    def provider(self) -> StripeProvider:
        return StripeProvider(self.secret_key, api_base=self.base, max_network_retries=0)

    def config(self) -> PaymentsConfig:
        return PaymentsConfig(stripe_secret_key=self.secret_key, stripe_api_base=self.base)

    def card(self, number: str = CARD_OK) -> str:
        """A card PaymentMethod made the way Stripe.js makes one in the browser; its id."""
        method = self.client().v1.payment_methods.create(params={
            "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        return str(method.id)

    def payment_intents(self) -> list[Any]:
        """Every PaymentIntent localstripe holds (it keeps at most what a test made)."""
        return list(self.client().v1.payment_intents.list(params={"limit": 100}).data)

    def intents_for(self, idempotency_key: str) -> list[Any]:
        """The PaymentIntents made with this idempotency key (the adapter writes it into metadata)."""
        return [pi for pi in self.payment_intents()
                if pi.to_dict().get("metadata", {}).get("idempotency_key") == idempotency_key]


def require_localstripe() -> None:
    if importlib.util.find_spec("localstripe") is None:
        unavailable("localstripe is not installed in the venv (pip install localstripe)")


@contextlib.contextmanager
def localstripe_server() -> Iterator[LocalStripe]:
    """A running localstripe for the block, stopped (and waited for) afterwards."""
    require_localstripe()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child never blocks on it
    process = subprocess.Popen([sys.executable, "-c", _CHILD, str(listener.fileno())],
                               pass_fds=(listener.fileno(),), stdout=log, stderr=log,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    listener.close()  # the child holds it now
    server = LocalStripe(base=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """One localstripe per test module (a conftest imports this fixture to offer it)."""
    with localstripe_server() as server:
        yield server


def _wait_ready(server: LocalStripe) -> None:
    deadline = time.monotonic() + START_SECONDS
    client = server.client()
    while True:
        if server.process.poll() is not None:
            server.log.seek(0)
            err = server.log.read().decode(errors="replace")
            raise RuntimeError(f"localstripe exited with {server.process.returncode}: {err[-2000:]}")
        try:
            client.v1.customers.list(params={"limit": 1})
            return
        except stripe.APIConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not answer on {server.base} within {START_SECONDS} s") from None
            time.sleep(0.1)
