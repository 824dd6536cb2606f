"""Endpoint management: validation, secrets, SSRF checks, and the deliveries debugger."""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence

import asyncpg
import msgspec
import structlog

from controlplane.events import registry
from controlplane.secret_box import SecretBox
from controlplane.shared.problems import Problem
from controlplane.webhooks import delivery_store, signing, store
from controlplane.webhooks.models import (DeliveryView, Endpoint, EndpointCreate, EndpointUpdate,
                                          EndpointSecrets, EndpointWithSecret)
from controlplane.webhooks.resolver import Resolve, system_resolve
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.targets import TargetError, check_addresses, parse_url

log = structlog.get_logger(__name__)

ENDPOINT_ID_PREFIX = "we_"
MAX_DESCRIPTION = 500
MAX_EVENT_TYPES = 100
DEBUGGER_ROWS = 100


def normalise_event_types(types: Sequence[str]) -> list[str]:
    """Registry names in the given order, deduplicated; ``["*"]`` when ``*`` is among them."""
    if not types:
        raise Problem(422, "event_types must list at least one event type, or \"*\"", field="event_types")
    if len(types) > MAX_EVENT_TYPES:
        raise Problem(422, f"event_types may list at most {MAX_EVENT_TYPES} types", field="event_types")
    for event_type in types:
        if event_type != registry.ALL and event_type not in registry.EVENT_TYPES:
            raise Problem(422, f"unknown event type {event_type!r} (see GET /v1/event-types)",
                          field="event_types")
    return [registry.ALL] if registry.ALL in types else list(dict.fromkeys(types))


class EndpointService:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, box: SecretBox,
                 resolve: Resolve = system_resolve) -> None:
        self._pool = pool
        self._settings = settings
        self._box = box
        self._resolve = resolve

    async def check_url(self, url: str) -> str:
        """The URL if it is an acceptable target now; a 422 naming ``url`` otherwise."""
        try:
            target = parse_url(url, production=self._settings.production)
            if target.ip is not None:
                addresses = [target.ip]
            else:
                try:
                    addresses = await self._resolve(target.host, target.port)
                except OSError:
                    raise TargetError(f"{target.host} does not resolve") from None
            check_addresses(target.host, addresses, self._settings.allow)
        except TargetError as exc:
            raise Problem(422, f"url {exc}", field="url") from None
        return url

    async def create(self, partner_id: str, data: EndpointCreate) -> EndpointWithSecret:
        url = await self.check_url(data.url)
        types = normalise_event_types(data.event_types)
        _check_description(data.description)
        endpoint_id = ENDPOINT_ID_PREFIX + secrets.token_hex(12)
        secret = signing.new_secret()
        endpoint = await store.insert(self._pool, endpoint_id, partner_id, url, data.description, types,
                                      data.enabled, self._box.seal(endpoint_id, secret))
        log.info("webhooks.endpoint_created", endpoint_id=endpoint_id, partner_id=partner_id)
        return _with_secret(endpoint, secret)

    async def list(self, partner_id: str) -> list[Endpoint]:
        return await store.list_for_partner(self._pool, partner_id)

    async def get(self, partner_id: str, endpoint_id: str) -> Endpoint:
        return _found(await store.get(self._pool, partner_id, endpoint_id))

    async def update(self, partner_id: str, endpoint_id: str, data: EndpointUpdate) -> Endpoint:
        url = None if data.url is msgspec.UNSET else await self.check_url(data.url)
        types = None if data.event_types is msgspec.UNSET else normalise_event_types(data.event_types)
        description = None if data.description is msgspec.UNSET else data.description
        if description is not None:
            _check_description(description)
        async with self._pool.acquire() as conn, conn.transaction():
            endpoint = _found(await store.update(conn, partner_id, endpoint_id, url=url,
                                                 description=description, event_types=types))
            if data.enabled is not msgspec.UNSET and data.enabled != endpoint.enabled:
                endpoint = _found(await store.set_enabled(conn, partner_id, endpoint_id, data.enabled))
        return endpoint

    async def set_enabled(self, partner_id: str, endpoint_id: str, enabled: bool) -> Endpoint:
        endpoint = _found(await store.set_enabled(self._pool, partner_id, endpoint_id, enabled))
        log.info("webhooks.endpoint_enabled" if enabled else "webhooks.endpoint_disabled_manually",
                 endpoint_id=endpoint_id)
        return endpoint

    async def rotate_secret(self, partner_id: str, endpoint_id: str) -> EndpointWithSecret:
        """A new secret, effective for every attempt that starts after this commits."""
        secret = signing.new_secret()
        endpoint = _found(await store.set_secret(self._pool, partner_id, endpoint_id,
                                                 self._box.seal(endpoint_id, secret)))
        log.info("webhooks.secret_rotated", endpoint_id=endpoint_id)
        return _with_secret(endpoint, secret)

    async def delete(self, partner_id: str, endpoint_id: str) -> None:
        """Soft delete: the delivery history stays; what was still to be sent is abandoned."""
        await self.get(partner_id, endpoint_id)
        async with self._pool.acquire() as conn, conn.transaction():
            # Deliveries first, the endpoint row second: the worker locks them in that order.
            await delivery_store.abandon(conn, endpoint_id, "endpoint deleted")
            if not await store.soft_delete(conn, partner_id, endpoint_id):
                raise Problem(404, "no such webhook endpoint")
        log.info("webhooks.endpoint_deleted", endpoint_id=endpoint_id)

    # builtins.list: inside this class "list" is the method above.
    async def deliveries(self, partner_id: str, endpoint_id: str) -> builtins.list[DeliveryView]:
        await self.get(partner_id, endpoint_id)
        return await delivery_store.recent(self._pool, endpoint_id, DEBUGGER_ROWS)

    async def delivery(self, partner_id: str, endpoint_id: str, delivery_id: str) -> DeliveryView:
        await self.get(partner_id, endpoint_id)
        view = await delivery_store.get(self._pool, endpoint_id, _delivery_number(delivery_id))
        if view is None:
            raise Problem(404, "no such delivery for this endpoint")
        return view

    async def redeliver(self, partner_id: str, endpoint_id: str, delivery_id: str) -> DeliveryView:
        """Send the same event (same id, same body) again, once, as soon as a worker can."""
        endpoint = await self.get(partner_id, endpoint_id)
        if not endpoint.enabled:
            raise Problem(409, "the endpoint is disabled; enable it before redelivering", code="endpoint_disabled")
        view = await delivery_store.redeliver(self._pool, endpoint_id, _delivery_number(delivery_id))
        if view is None:
            raise Problem(404, "no such delivery for this endpoint")
        log.info("webhooks.redeliver", endpoint_id=endpoint_id, event_id=view.event_id, delivery_id=view.id)
        return view


def _found(endpoint: Endpoint | None) -> Endpoint:
    if endpoint is None:
        raise Problem(404, "no such webhook endpoint")
    return endpoint


def _with_secret(endpoint: Endpoint, secret: str) -> EndpointWithSecret:
    shown = EndpointSecrets(signing_secret=secret)
    return EndpointWithSecret(**msgspec.structs.asdict(endpoint), secrets=shown)


def _check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION:
        raise Problem(422, f"description may be at most {MAX_DESCRIPTION} characters", field="description")


def _delivery_number(delivery_id: str) -> int:
    number = delivery_id.removeprefix(delivery_store.DELIVERY_ID_PREFIX)
    if not delivery_id.startswith(delivery_store.DELIVERY_ID_PREFIX) or not number.isdigit() or len(number) > 18:
        raise Problem(404, "no such delivery for this endpoint")
    return int(number)
