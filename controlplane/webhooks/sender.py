"""One delivery attempt: sign, POST, classify what came back."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import datetime
from urllib.parse import quote, urlsplit

from controlplane.secret_box import SecretBox
from controlplane.webhooks import signing
from controlplane.webhooks.client import Client, DeliveryError, Origin
from controlplane.webhooks.models import RESPONSE_EXCERPT, Job, Outcome
from controlplane.webhooks.resolver import Resolve, guarded
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.targets import Target, TargetError, check_addresses, parse_url

USER_AGENT = "controlplane-webhooks/0.1"
TIMEOUT = "Timeout"
SECRETS_KEPT = 4096  # decrypted endpoint secrets kept (then the cache starts over)
TARGETS_KEPT = 4096  # checked URLs kept, with their request heads


class Sender:
    """Owns the HTTP client; one per worker. Never raises for a failed attempt."""

    def __init__(self, settings: Settings, box: SecretBox, resolve: Resolve,
                 tls: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._box = box
        self._resolve = resolve
        self._tls = tls
        self._client: Client | None = None
        self._secrets: dict[tuple[str, bytes], str] = {}
        self._targets: dict[str, tuple[Origin, str]] = {}

    async def start(self) -> None:
        tls = self._tls or ssl.create_default_context()
        # Names are resolved and checked at every new connection, which goes to the addresses checked.
        self._client = Client(guarded(self._resolve, self._settings.allow), tls, RESPONSE_EXCERPT)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def attempt(self, job: Job, attempted_at: datetime) -> Outcome:
        assert self._client is not None, "Sender.start() first"
        try:
            secret = self._secret(job.endpoint_id, job.secret_enc)
            origin, head = self._target(job.url)
            if not job.event_id.isprintable():  # a header value: no line break may reach the request
                raise ValueError("event id")
            signed = signing.headers(secret, job.event_id, int(time.time()), job.body)
            request = "".join((head, *(f"{k}: {v}\r\n" for k, v in signed.items()),
                               f"Content-Length: {len(job.body)}\r\n\r\n")).encode() + job.body
            async with asyncio.timeout(self._settings.timeout):  # connect, send, and the reply read
                response = await self._client.post(origin, request)
            ok = 200 <= response.status < 300
            return Outcome(job, ok, response.status, None, response.body, response.truncated, attempted_at)
        except TimeoutError:
            error = TIMEOUT
        except TargetError as exc:
            error = f"Refused: {exc}"
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # undecryptable secret (key changed), bad URL in the row, ...
            error = f"Internal: {type(exc).__name__}"
        return Outcome(job, False, None, error[:500], None, False, attempted_at)

    def _secret(self, endpoint_id: str, sealed: bytes) -> str:
        """The endpoint's signing secret, decrypted once per (endpoint, sealed value): a rotated
        secret is a new sealed value, so it is never served stale."""
        key = (endpoint_id, sealed)
        secret = self._secrets.get(key)
        if secret is None:
            if len(self._secrets) >= SECRETS_KEPT:
                self._secrets.clear()
            secret = self._secrets[key] = self._box.open(endpoint_id, sealed)
        return secret

    def _target(self, url: str) -> tuple[Origin, str]:
        """The URL's shape rules again (the mode may have changed), and an address literal's
        address rules (names are checked at each connection): once per URL, with its request head."""
        cached = self._targets.get(url)
        if cached is None:
            target = parse_url(url, production=self._settings.production)
            if target.ip is not None:
                check_addresses(target.host, [target.ip], self._settings.allow)
            if len(self._targets) >= TARGETS_KEPT:
                self._targets.clear()
            cached = self._targets[url] = (Origin(target.scheme == "https", target.host, target.port, target.ip),
                                           request_head(target))
        return cached


def request_head(target: Target) -> str:
    """The request line and the headers every attempt to ``target`` sends. Pure."""
    parts = urlsplit(target.url)
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    host = f"[{target.host}]" if target.ip is not None and target.ip.version == 6 else target.host
    if target.port != (443 if target.scheme == "https" else 80):
        host += f":{target.port}"
    return f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
