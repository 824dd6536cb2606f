"""One delivery attempt over HTTP: sign, POST, classify what came back."""

from __future__ import annotations

import functools
import time
from datetime import datetime

import aiohttp

from controlplane.secret_box import SecretBox
from controlplane.webhooks import signing
from controlplane.webhooks.models import RESPONSE_EXCERPT, Job, Outcome
from controlplane.webhooks.resolver import GuardedResolver, Resolve
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.targets import TargetError, check_addresses, parse_url

RESPONSE_LIMIT = RESPONSE_EXCERPT
USER_AGENT = "controlplane-webhooks/0.1"
TIMEOUT = "Timeout"
SECRETS_KEPT = 4096  # decrypted endpoint secrets kept (then the cache starts over)


class Sender:
    """Owns the HTTP client; one per worker. Never raises for a failed attempt."""

    def __init__(self, settings: Settings, box: SecretBox, resolve: Resolve) -> None:
        self._settings = settings
        self._box = box
        self._resolve = resolve
        self._session: aiohttp.ClientSession | None = None
        self._secrets: dict[tuple[str, bytes], str] = {}

    async def start(self) -> None:
        resolver = GuardedResolver(self._resolve, self._settings.allow)
        connector = aiohttp.TCPConnector(limit=self._settings.max_concurrency, limit_per_host=0,
                                         resolver=resolver, ttl_dns_cache=10)
        # The attempt's deadline is aiohttp's own total timeout (connect, send, and the reply
        # read to its end): an asyncio.timeout around each attempt was a second timer per attempt.
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              headers={"User-Agent": USER_AGENT},
                                              timeout=aiohttp.ClientTimeout(total=self._settings.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def attempt(self, job: Job, attempted_at: datetime) -> Outcome:
        assert self._session is not None, "Sender.start() first"
        try:
            secret = self._secret(job.endpoint_id, job.secret_enc)
            self._check_target(job.url)
            headers = signing.headers(secret, job.event_id, int(time.time()), job.body)
            async with self._session.post(job.url, data=job.body, headers=headers,
                                          allow_redirects=False) as response:
                body, truncated = await _read_limited(response)
            ok = 200 <= response.status < 300
            return Outcome(job, ok, response.status, None, body, truncated, attempted_at)
        except TimeoutError:  # aiohttp's total timeout (its ServerTimeoutError is one too)
            error = TIMEOUT
        except TargetError as exc:
            error = f"Refused: {exc}"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError):
            error = "Connection closed"
        except aiohttp.ClientConnectorDNSError as exc:
            error = f"DNS: {exc.os_error}"
        except aiohttp.ClientSSLError as exc:
            error = f"TLS: {exc}"
        except aiohttp.ClientConnectorError as exc:
            error = f"Connection failed: {exc.os_error.strerror or exc.os_error}"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
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

    def _check_target(self, url: str) -> None:
        """Shape rules again (the mode may have changed); address literals skip the resolver."""
        _check_target(url, self._settings)


@functools.lru_cache(maxsize=4096)
def _check_target(url: str, settings: Settings) -> None:
    # Pure and hot (every attempt): cached per URL. Names are still resolved and
    # checked at every connection by the GuardedResolver.
    target = parse_url(url, production=settings.production)
    if target.ip is not None:
        check_addresses(target.host, [target.ip], settings.allow)


async def _read_limited(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while size <= RESPONSE_LIMIT:
        chunk = await response.content.read(RESPONSE_LIMIT + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:RESPONSE_LIMIT], len(body) > RESPONSE_LIMIT
