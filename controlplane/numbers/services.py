"""Search, purchase, inventory, assignment, routing and CNAM: the decisions.

Every change commits with its ``phone_number.*`` event (transactional outbox);
dialplan consequences are announced after the commit (the ``dialplan_changed`` signal):
the tenants applier re-renders and reloads Asterisk's dialplan.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
import structlog

from controlplane.events import emit
from controlplane.shared.pagination import PageRequest, next_page
from controlplane.shared.ids import new_id
from controlplane.shared.problems import Problem
from controlplane.numbers import cnam as cnam_rules
from controlplane.numbers import assignment, inventory_store, numbers_store, vanity
from controlplane.numbers.carrier import (BuiltinCarrier, BuiltinCnamProvider, Carrier, CnamProvider, CnamResult,
                                          InventoryError, parse_inventory)
from controlplane.numbers.inventory_store import Conn
from controlplane.numbers.models import (AvailableNumber, CnamStatus, NumberKind, PhoneNumber, PurchaseResult)
from controlplane.numbers.pricing import price
from controlplane.signals import DialplanSink
from controlplane.payments.provider import PaymentProvider
from controlplane.wallet import recharge
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind, setup_reference
from e911.address import STATES
from e911.provider import E911Status

log = structlog.get_logger(__name__)
MAX_PURCHASE = 100
MAX_RESULTS = 100
DID_STATUSES = ("ACTIVE", "PENDING", "RELEASED")
T = TypeVar("T")


def digits(value: str | None, field: str, length: int) -> str | None:
    if value is None or value == "":
        return None
    if not (len(value) == length and value.isdigit()):
        raise Problem(422, f"{field}: {length} digits", field=field)
    return value


def e164_us(value: object, field: str) -> str:
    text = value if isinstance(value, str) else ""
    bare = text.removeprefix("+1") if text.startswith("+1") else text
    if not (len(bare) == 10 and bare.isdigit() and bare[0] in "23456789"):
        raise Problem(422, f"{field}: a US number, +1 and ten digits", field=field)
    return "+1" + bare


async def emit_number(conn: Conn, event_type: str, number: PhoneNumber, tenant_id: str | None,
                      **extra: object) -> None:
    await emit(conn, event_type, partner_id=number.partner_id, tenant_id=tenant_id,
               data={"phone_number": number, **extra})


@dataclass
class NumberServices:
    pool: asyncpg.Pool
    applier: DialplanSink | None = None  # the ``dialplan_changed`` signal (or a test's Applier)
    carrier: Carrier = field(default_factory=BuiltinCarrier)
    cnam_provider: CnamProvider = field(default_factory=BuiltinCnamProvider)
    on_cap_tripped: assignment.CapHook | None = None
    payments: PaymentProvider | None = None  # auto-recharge of a short wallet at purchase

    def changed(self) -> None:
        if self.applier is not None:
            self.applier.dialplan_changed()

    # ---------------------------------------------------------------- inventory

    async def load_inventory(self, text: str) -> int:
        """Numbers from an operator's file (carrier.parse_inventory); how many were new."""
        try:
            rows = list(parse_inventory(text))
        except InventoryError as exc:
            raise Problem(422, f"inventory: {exc}", field="body") from None
        async with self.pool.acquire() as conn, conn.transaction():
            added = await inventory_store.load(conn, rows, self.carrier.name)
        log.info("numbers.inventory_loaded", rows=len(rows), added=added)
        return added

    # ---------------------------------------------------------------- search and purchase

    async def _tier(self, conn: Conn, partner_id: str, *, lock: bool = False) -> str:
        tier = await conn.fetchval("SELECT tier FROM partners WHERE id = $1" + (" FOR UPDATE" if lock else ""),
                                   partner_id)
        if tier is None:
            raise Problem(404, f"no partner {partner_id}", code="not_found")
        return str(tier)

    def _available(self, rows: Sequence[asyncpg.Record], tier: str) -> list[AvailableNumber]:
        out = []
        for r in rows:
            p = price(tier, r["kind"])
            region = ", ".join(x for x in (r["city"], r["state"]) if x) or None
            out.append(AvailableNumber(number=r["number"], kind=NumberKind(r["kind"]), region=region,
                                       rate_center=r["rate_center"], monthly_price_micros=p.monthly,
                                       setup_fee_micros=p.setup,
                                       per_minute_micros=p.per_minute))
        return out

    async def search_local(self, partner_id: str, state: str | None, area_code: str | None, nxx: str | None,
                           rate_center: str | None, city: str | None, limit: int = 20) -> list[AvailableNumber]:
        if not state:
            raise Problem(422, "state: required for a local search", field="state")
        if state.upper() not in STATES:
            raise Problem(422, "state: a two-letter USPS code", field="state")
        npa, nxx = digits(area_code, "area_code", 3), digits(nxx, "nxx", 3)
        for name, value in (("rate_center", rate_center), ("city", city)):
            if value is not None and (len(value) > 40 or not value.replace(" ", "").replace("-", "").isalpha()):
                raise Problem(422, f"{name}: letters and spaces, at most 40", field=name)
        if not 1 <= limit <= MAX_RESULTS:
            raise Problem(422, f"limit: 1-{MAX_RESULTS}", field="limit")
        async with self.pool.acquire() as conn:
            tier = await self._tier(conn, partner_id)
            rows = await inventory_store.search_local(conn, state.upper(), npa, nxx,
                                                      rate_center.upper() if rate_center else None,
                                                      city.upper() if city else None, limit)
        return self._available(rows, tier)

    async def search_toll_free(self, partner_id: str, pattern: str | None, quantity: int = 10
                               ) -> list[AvailableNumber]:
        if not 1 <= quantity <= MAX_RESULTS:
            raise Problem(422, f"quantity: 1-{MAX_RESULTS}", field="quantity")
        parsed = None
        if pattern:
            try:
                parsed = vanity.parse(pattern)
            except vanity.BadPattern as exc:
                raise Problem(422, f"pattern: {exc}", field="pattern") from None
        async with self.pool.acquire() as conn:
            tier = await self._tier(conn, partner_id)
            rows = await inventory_store.search_toll_free(conn, vanity.sql_like(parsed) if parsed else None,
                                                          quantity)
        if parsed is not None:  # the SQL LIKE is exact already; the pure matcher is the contract
            rows = [r for r in rows if vanity.matches(parsed, r["number"])]
        return self._available(rows, tier)

    async def purchase(self, partner_id: str, numbers: Sequence[str]) -> PurchaseResult:
        """``_purchase``; a wallet short of the setup fees with auto-recharge on is recharged by
        card first (seed 003: "or charged to your card if your wallet is empty and auto-recharge
        is on"; at most the hour's one recharge), then the purchase is tried once more."""
        try:
            return await self._purchase(partner_id, numbers)
        except Problem as short:
            if short.code != "insufficient_funds" or self.payments is None:
                raise
            needed = int(short.extra.get("required", 0))
            recharged = await recharge.recharge(self.pool, self.payments, partner_id, datetime.now(UTC),
                                                needed=needed)
            if recharged is None:
                raise
        return await self._purchase(partner_id, numbers)

    async def _purchase(self, partner_id: str, numbers: Sequence[str]) -> PurchaseResult:
        """All or nothing: each number must still be available; the wallet pays the setup fees.

        The wallet is checked and debited (one ``setup:<did id>`` entry per number) BEFORE
        the carrier is asked: a wallet that cannot pay never reaches it, and a carrier
        failure rolls the debit back with the rest. In TRIAL nothing is drawn: the account
        capability charges the same references at activation (so never twice)."""
        if not numbers or len(numbers) > MAX_PURCHASE:
            raise Problem(422, f"numbers: 1-{MAX_PURCHASE} numbers", field="numbers")
        wanted = sorted({e164_us(n, "numbers") for n in numbers})
        async with self.pool.acquire() as conn, conn.transaction():
            tier = await self._tier(conn, partner_id, lock=True)
            claimed = {r["number"]: r for r in await inventory_store.claim(conn, wanted, partner_id)}
            missing = [n for n in wanted if n not in claimed]
            if missing:
                raise Problem(409, f"no longer available: {', '.join(missing)}", code="number_unavailable",
                              field="numbers", extra={"unavailable": missing})
            prices = {n: price(tier, claimed[n]["kind"]) for n in wanted}
            did_ids = {n: new_id("did") for n in wanted}
            setup_total = sum(p.setup for p in prices.values())
            monthly_total = sum(p.monthly or 0 for p in prices.values())
            balance = await wallet_store.lock_balance(conn, partner_id)
            if not await wallet_store.in_trial(conn, partner_id):
                if balance < setup_total:
                    raise Problem(409, f"the wallet cannot cover the setup fees ({setup_total} micro-units);"
                                  " top it up first", code="insufficient_funds", extra={"required": setup_total})
                fees = [Entry(partner_id, EntryKind.SETUP_FEE, -prices[n].setup, setup_reference(did_ids[n]),
                              note=n) for n in wanted if prices[n].setup]
                for posted in await wallet_store.post_many(conn, fees):
                    balance = posted.balance_micros
            states = await self.carrier.order(wanted)
            created: list[PhoneNumber] = []
            for number in wanted:
                r, p, did_id = claimed[number], prices[number], did_ids[number]
                region = ", ".join(x for x in (r["city"], r["state"]) if x) or None
                if not await numbers_store.insert_purchased(conn, did_id, partner_id, number, r["kind"],
                                                            states.get(number, "PENDING"), region,
                                                            r["rate_center"], p.monthly, p.setup):
                    raise Problem(409, f"{number} is already in an inventory", code="number_unavailable",
                                  field="numbers")
                did = await numbers_store.get(conn, partner_id, did_id)
                assert did is not None
                created.append(did)
                await emit_number(conn, "phone_number.purchased", did, None)
        log.info("numbers.purchased", partner_id=partner_id, numbers=len(created), setup_total=setup_total)
        return PurchaseResult(numbers=created, setup_total_micros=setup_total,
                              monthly_total_micros=monthly_total,
                              wallet_balance_micros=balance)

    # ---------------------------------------------------------------- inventory view

    async def list_numbers(self, partner_id: str, page: PageRequest, *, tenant_id: str | None,
                           status: str | None, e911_status: str | None, q: str | None,
                           tenant_ids: frozenset[str] | None = None) -> tuple[list[PhoneNumber], str | None]:
        if status is not None and status not in DID_STATUSES:
            raise Problem(422, f"status: one of {', '.join(DID_STATUSES)}", field="status")
        if e911_status is not None and e911_status not in E911Status.__members__:
            raise Problem(422, f"e911_status: one of {', '.join(E911Status)}", field="e911_status")
        if q is not None and len(q) > 100:
            raise Problem(422, "q: at most 100 characters", field="q")
        async with self.pool.acquire() as conn:
            items = await numbers_store.list_page(conn, partner_id, page, tenant_id=tenant_id, status=status,
                                                  e911_status=e911_status, q=q, tenant_ids=tenant_ids)
        return next_page(items, page)

    async def get(self, partner_id: str, did_id: str) -> PhoneNumber:
        async with self.pool.acquire() as conn:
            return await self.number(conn, partner_id, did_id)

    async def number(self, conn: Conn, partner_id: str, did_id: str, *, lock: bool = False) -> PhoneNumber:
        did = await numbers_store.get(conn, partner_id, did_id, lock=lock)
        if did is None:
            raise Problem(404, f"no number {did_id} for this partner", code="not_found")
        return did

    # ---------------------------------------------------------------- assignment and routing
    # Each goes through controlplane/numbers/assignment.py, the one DID assignment path.

    async def assigning(self, partner_id: str, work: Awaitable[T]) -> T:
        """``work``; a tripped ``max_dids`` goes to the limits capability after the rollback."""
        return await assignment.guarded(self.on_cap_tripped, partner_id, work)

    async def assign(self, partner_id: str, did_id: str, tenant_id: str, extension_id: str | None) -> PhoneNumber:
        return await self.assigning(partner_id, self._assign(partner_id, did_id, tenant_id, extension_id))

    async def _assign(self, partner_id: str, did_id: str, tenant_id: str, extension_id: str | None
                      ) -> PhoneNumber:
        async with self.pool.acquire() as conn, conn.transaction():
            did = await self.number(conn, partner_id, did_id, lock=True)
            if did.tenant_id not in (None, tenant_id):
                raise Problem(409, f"{did.number} is assigned to another tenant; release it first",
                              code="did_assigned")
            after = await assignment.change(conn, partner_id, did, tenant_id, extension_id)
        self.changed()
        return after

    async def release(self, partner_id: str, did_id: str) -> PhoneNumber:
        async with self.pool.acquire() as conn, conn.transaction():
            did = await self.number(conn, partner_id, did_id, lock=True)
            if did.tenant_id is None:
                raise Problem(409, f"{did.number} is not assigned to a tenant", code="not_assigned")
            after = await assignment.change(conn, partner_id, did, None, None)
        self.changed()
        return after

    async def route(self, partner_id: str, did_id: str, extension_id: str | None) -> PhoneNumber:
        async with self.pool.acquire() as conn, conn.transaction():
            did = await self.number(conn, partner_id, did_id, lock=True)
            if did.tenant_id is None:
                raise Problem(409, "assign the number to a tenant before routing it", code="not_assigned")
            after = await assignment.change(conn, partner_id, did, did.tenant_id, extension_id)
        self.changed()
        return after

    # ---------------------------------------------------------------- CNAM

    async def set_cnam(self, partner_id: str, did_id: str, value: str | None) -> PhoneNumber:
        """Pending until the CNAM provider answers; Synced or Failed (with the carrier's reason)."""
        cnam = None
        if value is not None:
            try:
                cnam = cnam_rules.validate(value)
            except cnam_rules.CnamInvalid as exc:
                raise Problem(422, f"cnam: {exc}", field="cnam") from None
        async with self.pool.acquire() as conn, conn.transaction():
            did = await self.number(conn, partner_id, did_id, lock=True)
            await numbers_store.set_cnam(conn, did_id, cnam, CnamStatus.PENDING, None)
            pending = await self.number(conn, partner_id, did_id)
            await emit_number(conn, "phone_number.updated", pending, did.tenant_id)
        self.changed()
        try:
            result = await asyncio.wait_for(self.cnam_provider.update(pending.number, pending.effective_cnam), 30)
        except Exception as exc:  # the provider is down: Failed, retry by saving again
            log.warning("numbers.cnam_provider_failed", number=pending.number, error=str(exc))
            result = CnamResult(CnamStatus.FAILED, "the CNAM provider did not answer")
        async with self.pool.acquire() as conn, conn.transaction():
            if await numbers_store.set_cnam_status(conn, did_id, cnam, result.status, result.reason):
                after = await self.number(conn, partner_id, did_id)
                await emit_number(conn, "phone_number.updated", after, did.tenant_id)
            else:
                after = await self.number(conn, partner_id, did_id)
        return after
