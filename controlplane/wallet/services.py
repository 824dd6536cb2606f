"""What the wallet decides: top-ups by card, operator adjustments, history, auto-recharge and
the low-balance warning (docs/wallet.md).

Money comes in by card through ``payments.charges.charge_partner`` (once per reference),
then the credit is posted with the SAME reference: a retried request, or a job that died
between the charge and the post, charges once and credits once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from controlplane import audit
from controlplane.config import WalletConfig
from controlplane.events import emit
from controlplane.payments import store as payments_store
from controlplane.payments.charges import charge_partner
from controlplane.payments.provider import (NoPaymentMethod, PaymentDeclined, PaymentProvider, PaymentsDisabled,
                                            PaymentUnavailable)
from controlplane.shared import money
from controlplane.shared.pagination import PageRequest, encode_cursor
from controlplane.shared.problems import FieldError, Problem
from controlplane.signals import PaymentMethodsChanged
from controlplane.wallet import recharge, store
from controlplane.wallet.models import (AdjustmentBody, AutoRechargeBody, AutoRechargeView, CreditBody, CreditView,
                                        Entry, EntryKind, EntryView, Posted, PostedView, RechargeSettings,
                                        WalletView, adjustment_reference, amount_errors, top_up_reference)

log = structlog.get_logger(__name__)
_REFERENCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-")
DECLINED, NO_METHOD = recharge.DECLINED, recharge.NO_METHOD


def _problems(errors: list[FieldError]) -> None:
    if errors:
        raise Problem(422, "; ".join(e.message for e in errors), errors=errors)


def _reference_errors(field: str, value: str) -> list[FieldError]:
    if 1 <= len(value) <= 64 and set(value) <= _REFERENCE_CHARS:
        return []
    return [FieldError(field, f"{field}: 1-64 letters, digits and . _ : / -")]


def _text_errors(field: str, value: str | None, *, required: bool, limit: int = 200) -> list[FieldError]:
    if value is None or (not required and value == ""):
        return [FieldError(field, f"{field}: required")] if required else []
    if not (1 <= len(value) <= limit and value.isprintable() and value.strip()):
        return [FieldError(field, f"{field}: 1-{limit} printable characters")]
    return []


def entry_view(row: asyncpg.Record) -> EntryView:
    return EntryView(id=str(row["id"]), partner_id=row["partner_id"], kind=row["kind"],
                     amount_micros=row["amount"], reference=row["reference"], tenant_id=row["tenant_id"],
                     call_id=row["call_id"], note=row["note"], created_at=row["created_at"])


@dataclass
class WalletServices:
    pool: asyncpg.Pool
    payments: PaymentProvider | None = None
    config: WalletConfig = field(default_factory=WalletConfig)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Set by the plugin: has the worker look at a partner now (new settings may be due at once).
    poke: Callable[[str], None] = field(default=lambda partner_id: None)

    # ------------------------------------------------------------ reads

    async def wallet(self, partner_id: str) -> WalletView:
        async with self.pool.acquire() as conn:
            balance, s = await store.settings(conn, partner_id)
        return WalletView(partner_id=partner_id, balance_micros=balance, auto_recharge=_recharge_view(s),
                          low_balance_threshold_micros=self.config.low_balance_threshold_micros)

    async def entries(self, f: store.EntryFilter, page: PageRequest) -> tuple[list[EntryView], str | None]:
        async with self.pool.acquire() as conn:
            rows = await store.list_entries(conn, f, page)
        items = [entry_view(r) for r in rows[:page.limit]]
        cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > page.limit else None
        return items, cursor

    async def export(self, f: store.EntryFilter) -> AsyncIterator[EntryView]:
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            async for row in store.iter_entries(conn, f):
                yield entry_view(row)

    # ------------------------------------------------------------ money in

    async def _posted(self, conn: store.Conn, posted: Posted) -> PostedView:
        return PostedView(entry=entry_view(await store.entry(conn, posted.entry_id)),
                          balance_micros=posted.balance_micros)

    async def top_up(self, partner_id: str, amount_micros: int, idempotency_key: str | None
                     ) -> tuple[PostedView, bool]:
        """Charge the default card, then credit the wallet, both once per Idempotency-Key."""
        errors = amount_errors("amount_micros", amount_micros, cents=True)
        if idempotency_key is None:
            errors.append(FieldError("Idempotency-Key", "Idempotency-Key: required on a top-up (a retry must"
                                                        " not charge the card twice)"))
        _problems(errors)
        assert idempotency_key is not None
        reference = top_up_reference(idempotency_key)
        async with self.pool.acquire() as conn:
            if not await store.partner_exists(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
        charge = await self._charge(partner_id, amount_micros, reference, "Wallet top-up", interactive=True)
        async with self.pool.acquire() as conn, conn.transaction():
            posted = await store.post(conn, Entry(partner_id, EntryKind.TOP_UP, charge.amount_micros, reference,
                                                  note=f"card charge {charge.charge_id}"))
            if posted.created:
                await audit.record(conn, action="top_up", resource="wallet", resource_id=reference,
                                   partner_id=partner_id, after={"amount_micros": charge.amount_micros})
            view = await self._posted(conn, posted)
        log.info("wallet.topped_up", partner_id=partner_id, amount_micros=charge.amount_micros,
                 created=posted.created)
        return view, posted.created

    async def _charge(self, partner_id: str, amount_micros: int, reference: str, description: str, *,
                      interactive: bool) -> _Charged:
        try:
            charge = await charge_partner(self.pool, self.payments, partner_id=partner_id,
                                          amount_micros=amount_micros, reference=reference,
                                          description=description, retry_declined=interactive)
        except PaymentsDisabled:
            raise Problem(409, "payments are not configured on this platform", code="payments_disabled") from None
        except NoPaymentMethod:
            raise Problem(409, "add a default payment method first", code="no_payment_method") from None
        except PaymentUnavailable:
            raise Problem(503, "the payment provider did not answer; retry with the same Idempotency-Key",
                          code="payment_unavailable", headers={"Retry-After": "5"}) from None
        except PaymentDeclined as exc:
            await recharge.emit_declined(self.pool, partner_id, reference, amount_micros, exc, turn_off=False)
            raise Problem(402, f"the card was declined: {exc.message}", code="payment_declined",
                          extra={"decline_code": exc.code}) from None
        return _Charged(charge.charge_id, charge.amount_micros)

    async def adjust(self, partner_id: str, body: AdjustmentBody) -> tuple[PostedView, bool]:
        """The platform operator moves money by hand, with a reason, once per reference."""
        _problems([*amount_errors("amount_micros", body.amount_micros, cents=False),
                   *_reference_errors("reference", body.reference),
                   *_text_errors("reason", body.reason, required=True),
                   *([] if body.direction in ("credit", "debit")
                     else [FieldError("direction", "direction: credit or debit")])])
        amount = body.amount_micros if body.direction == "credit" else -body.amount_micros
        return await self._adjust(partner_id, amount, body.reference, body.reason,
                                  "adjustment_reference_conflict")

    async def _adjust(self, partner_id: str, amount: int, reference: str, reason: str | None,
                      conflict: str) -> tuple[PostedView, bool]:
        ref = adjustment_reference(reference)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.partner_exists(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            posted = await store.post(conn, Entry(partner_id, EntryKind.MANUAL_ADJUSTMENT, amount, ref, note=reason))
            if posted.amount_micros != amount:
                raise Problem(409, f"reference {reference!r} already moved {posted.amount_micros} micro-units",
                              field="reference", code=conflict)
            if posted.created:
                await audit.record(conn, action="adjust", resource="wallet", resource_id=ref,
                                   partner_id=partner_id, after={"amount_micros": amount, "reason": reason})
            view = await self._posted(conn, posted)
        return view, posted.created

    async def credit(self, partner_id: str, body: CreditBody) -> tuple[CreditView, bool]:
        """``POST /v1/wallet/credits``, kept: a credit adjustment whose reason is the note."""
        _problems([*amount_errors("amount_micros", body.amount_micros, cents=False),
                   *_reference_errors("reference", body.reference),
                   *_text_errors("note", body.note, required=False)])
        view, created = await self._adjust(partner_id, body.amount_micros, body.reference, body.note,
                                           "credit_reference_conflict")
        return CreditView(partner_id=partner_id, reference=body.reference, amount_micros=view.entry.amount_micros,
                          note=view.entry.note, created_at=view.entry.created_at,
                          balance_micros=view.balance_micros), created

    # ------------------------------------------------------------ auto-recharge settings

    async def put_auto_recharge(self, partner_id: str, body: AutoRechargeBody) -> AutoRechargeView:
        errors = amount_errors("threshold_micros", body.threshold_micros, cents=False, allow_zero=True)
        if body.enabled or body.amount_micros:
            errors += amount_errors("amount_micros", body.amount_micros, cents=True)
        _problems(errors)
        settings = RechargeSettings(body.enabled, body.threshold_micros, body.amount_micros)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.partner_exists(conn, partner_id):
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            if body.enabled and await payments_store.default_method(conn, partner_id) is None:
                raise Problem(409, "auto-recharge charges the default card: add one first",
                              code="no_payment_method")
            await store.put_settings(conn, partner_id, settings)
            await audit.record(conn, action="update", resource="wallet_auto_recharge", resource_id=partner_id,
                               partner_id=partner_id, after={"enabled": body.enabled,
                                                             "threshold_micros": body.threshold_micros,
                                                             "amount_micros": body.amount_micros})
            _, stored = await store.settings(conn, partner_id)
        self.poke(partner_id)
        return _recharge_view(stored)

    async def payment_methods_changed(self, conn: store.Conn, change: PaymentMethodsChanged) -> None:
        """In the change's transaction: no default card left -> auto-recharge off; a new
        default after we turned it off -> back on (seed 003: "until you fix it")."""
        if change.default_method is None:
            if await store.turn_off(conn, change.partner_id, NO_METHOD):
                log.info("wallet.auto_recharge_off", partner_id=change.partner_id, reason=NO_METHOD)
            return
        # Still the card that was declined (another card attached beside it): stays off.
        reasons = (NO_METHOD,) if change.default_method == await store.declined_recharge_card(
            conn, change.partner_id) else (DECLINED, NO_METHOD)
        if await store.turn_back_on(conn, change.partner_id, reasons):
            log.info("wallet.auto_recharge_on", partner_id=change.partner_id)

    # ------------------------------------------------------------ reacting to balances

    async def check(self, partner_id: str) -> None:
        """After a balance changed: recharge when under the threshold, then the warning."""
        await self.recharge(partner_id)
        await self.warn(partner_id)

    async def recharge(self, partner_id: str) -> Posted | None:
        """Auto-recharge when under the threshold (``wallet.recharge``: at most once an hour)."""
        return await recharge.recharge(self.pool, self.payments, partner_id, self.clock())

    async def warn(self, partner_id: str) -> bool:
        """``wallet.low_balance`` once per fall below the warning threshold (True: emitted now)."""
        threshold = self.config.low_balance_threshold_micros
        async with self.pool.acquire() as conn, conn.transaction():
            flipped = await store.flip_low_balance(conn, partner_id, threshold)
            if flipped is None or not flipped[0]:
                return False
            await emit(conn, "wallet.low_balance", partner_id=partner_id,
                       data={"balance_micros": flipped[1], "threshold_micros": threshold,
                             "currency": money.currency()})
        log.info("wallet.low_balance", partner_id=partner_id, balance_micros=flipped[1])
        return True

    async def sweep(self) -> int:
        """Whatever the notifications missed: recharges due, warnings due, and card charges
        that succeeded without their credit (a process that died in between)."""
        async with self.pool.acquire() as conn:
            due = set(await store.recharge_due(conn))
            due |= set(await store.warning_due(conn, self.config.low_balance_threshold_micros))
            orphans = await store.uncredited_charges(conn)
        for partner_id, reference, amount, charge_id in orphans:
            kind = EntryKind.AUTO_RECHARGE if reference.startswith("recharge:") else EntryKind.TOP_UP
            async with self.pool.acquire() as conn, conn.transaction():
                await store.post(conn, Entry(partner_id, kind, amount, reference, note=f"card charge {charge_id}"))
            log.warning("wallet.credit_recovered", partner_id=partner_id, reference=reference)
        for partner_id in sorted(due):
            await self.check(partner_id)
        return len(due) + len(orphans)


@dataclass(frozen=True, slots=True)
class _Charged:
    charge_id: str
    amount_micros: int


def _recharge_view(s: RechargeSettings) -> AutoRechargeView:
    return AutoRechargeView(enabled=s.enabled, threshold_micros=s.threshold_micros, amount_micros=s.amount_micros,
                            disabled_reason=s.off_reason)
