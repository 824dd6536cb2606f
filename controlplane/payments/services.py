"""The partner's payment methods: attach (the first becomes the default), list, default, delete.

The browser creates the payment method at the provider (Stripe.js / Elements): we only ever
see its id. The partner's customer at the provider is created on the first attach, with an
idempotency key by partner, so two first attaches at once make one customer.

Every change sends ``payment_methods_changed`` with the default after it, inside its
transaction (the wallet turns auto-recharge off when that is None, atomically).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import asyncpg
import structlog

from controlplane.db.connection import Connection
from controlplane.events.emit import emit
from controlplane.payments import store
from controlplane.payments.models import METHOD_ID, PaymentMethodView
from controlplane.payments.provider import PaymentProvider, PaymentsDisabled, PaymentUnavailable
from controlplane.shared.problems import Problem
from controlplane.signals import PaymentMethodsChanged, Signals

log = structlog.get_logger(__name__)
PROVIDER = "stripe"


def check_method_id(method_id: str, field: str = "payment_method_id") -> str:
    """A provider payment method id (``pm_...``), else a 422 naming the field."""
    if not METHOD_ID.fullmatch(method_id):
        raise Problem(422, f"{field}: a payment method id (pm_...) from Stripe.js, not card data",
                      field=field)
    return method_id


def customer_key(partner_id: str) -> str:
    return f"customer:{partner_id}"


@dataclass(frozen=True)
class PaymentMethods:
    pool: asyncpg.Pool
    provider: PaymentProvider | None
    signals: Signals

    def _provider(self) -> PaymentProvider:
        if self.provider is None:
            raise PaymentsDisabled()
        return self.provider

    async def _customer(self, provider: PaymentProvider, partner_id: str) -> str:
        existing = await store.customer_id(self.pool, partner_id)
        if existing is not None:
            return existing
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_customer_creation(conn, partner_id)
            existing = await store.customer_id(conn, partner_id)
            if existing is not None:  # a concurrent first attach made it meanwhile
                return existing
            name = await conn.fetchval("SELECT name FROM partners WHERE id = $1", partner_id)
            if name is None:
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            created = await provider.create_customer(partner_id=partner_id, email=None, name=str(name),
                                                     idempotency_key=customer_key(partner_id))
            return await store.save_customer(conn, partner_id, PROVIDER, created)

    async def attach(self, partner_id: str, method_id: str) -> tuple[PaymentMethodView, bool]:
        """The saved method and whether it is new (attaching a saved one again changes nothing)."""
        check_method_id(method_id)  # bad input is a 422 whether payments are on or not
        provider = self._provider()
        owner = await store.method_owner(self.pool, method_id)
        if owner == partner_id:
            saved = await store.method(self.pool, partner_id, method_id)
            assert saved is not None
            return saved, False
        if owner is not None:
            raise Problem(409, f"payment method {method_id} belongs to another account", code="conflict",
                          field="payment_method_id")
        customer = await self._customer(provider, partner_id)
        card = await provider.attach_method(customer_id=customer, method_id=method_id)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.lock_partner(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            first = await store.default_method(conn, partner_id) is None
            await store.insert_method(conn, partner_id, card, default=first)
            saved = await store.method(conn, partner_id, method_id)
            if saved is None:  # attached meanwhile to another partner: their row stands
                raise Problem(409, f"payment method {method_id} belongs to another account", code="conflict",
                              field="payment_method_id")
            await emit(conn, "payment_method.attached", partner_id=partner_id,
                       data={"id": saved.id, "brand": saved.brand, "last4": saved.last4,
                             "exp_month": saved.exp_month, "exp_year": saved.exp_year,
                             "is_default": saved.is_default})
            await self._changed(conn, partner_id)
        log.info("payments.method_attached", partner_id=partner_id, method_id=method_id, default=first)
        return saved, True

    async def list_methods(self, partner_id: str) -> list[PaymentMethodView]:
        self._provider()
        return await store.methods(self.pool, partner_id)

    async def make_default(self, partner_id: str, method_id: str) -> PaymentMethodView:
        self._provider()
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_partner(conn, partner_id)
            current = await store.method(conn, partner_id, method_id)
            if current is None:
                raise _not_found(method_id)
            if not current.is_default:
                await store.set_default(conn, partner_id, method_id)
                await self._changed(conn, partner_id)
            saved = await store.method(conn, partner_id, method_id)
        assert saved is not None
        return saved

    async def delete(self, partner_id: str, method_id: str) -> None:
        """Forget the method (the newest other one becomes the default), then detach it at the provider."""
        provider = self._provider()
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_partner(conn, partner_id)
            current = await store.method(conn, partner_id, method_id)
            if current is None:
                raise _not_found(method_id)
            await store.delete_method(conn, partner_id, method_id)
            if current.is_default:
                await store.set_default(conn, partner_id, None)
            await self._changed(conn, partner_id)
        try:  # after commit: a failed detach leaves an unused card at the provider, never a charged one
            await provider.detach_method(method_id=method_id)
        except (PaymentUnavailable, Problem) as exc:
            log.warning("payments.detach_failed", partner_id=partner_id, method_id=method_id, error=str(exc))

    async def _changed(self, conn: Connection, partner_id: str) -> None:
        default = await store.default_method(conn, partner_id)
        # The pool's connection proxy is a Connection to every handler (it forwards each call).
        await self.signals.payment_methods_changed.send(
            cast(asyncpg.Connection, conn), PaymentMethodsChanged(partner_id, None if default is None else default.method_id))


def _not_found(method_id: str) -> Problem:
    return Problem(404, f"no payment method {method_id} for this partner", code="not_found")
