"""Typed signals between capabilities, in the spirit of aiohttp's ``Signal``.

A capability that reacts to another one subscribes to one of the signals below in
its plugin's ``install`` (``context.signals.<name>.connect(handler)``); the emitting
capability sends it without knowing who listens. The daemon freezes the set once
every plugin is installed (``make_app``): connecting afterwards raises, and so does
sending before, so a reaction can never depend on which plugin was installed first.

Each signal's kind says when its handlers run:

- ``InTransaction``: inside the emitter's transaction, given its connection; a
  handler that raises rolls the change back.
- ``AfterCommit``: after the change committed (or, for ``cap_tripped``, after the
  refusing transaction rolled back); a handler that raises is logged and the other
  handlers still run: the change stands.
- ``Notice``: after commit, synchronously on the emitter's task; its handlers only
  take note (set a flag, schedule work) and never wait.

Payloads are frozen records; handlers of a signal run in subscription order (the
plugin order). A signal is added with its first subscriber: one nobody handles is not
kept "for later" (a ``did_changed`` for billing belongs beside ``numbers.assignment``,
the one path every DID change takes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import asyncpg
import structlog

if TYPE_CHECKING:
    from cdr_ingest.records import CallRecord

log = structlog.get_logger(__name__)
T = TypeVar("T")
H = TypeVar("H")


class SignalFrozen(RuntimeError):
    """A handler was connected after start-up."""


class SignalNotFrozen(RuntimeError):
    """A signal was sent before every plugin had subscribed."""


class _Signal(Generic[H]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: list[H] = []
        self._frozen = False

    def connect(self, handler: H) -> None:
        if self._frozen:
            raise SignalFrozen(f"signal {self.name} is frozen: subscribe in a plugin's install")
        self._handlers.append(handler)

    def freeze(self) -> None:
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def handlers(self) -> tuple[H, ...]:
        return tuple(self._handlers)

    def _ready(self) -> None:
        if not self._frozen:
            raise SignalNotFrozen(f"signal {self.name} sent before start-up finished")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} handlers={len(self._handlers)} frozen={self._frozen}>"


class InTransaction(_Signal[Callable[[asyncpg.Connection, T], Awaitable[None]]], Generic[T]):
    """Handlers run inside the emitter's transaction on its connection; an error rolls it back."""

    async def send(self, conn: asyncpg.Connection, payload: T) -> None:
        self._ready()
        for handler in self._handlers:
            await handler(conn, payload)


class AfterCommit(_Signal[Callable[[T], Awaitable[None]]], Generic[T]):
    """Handlers run after the emitter's transaction ended; an error is logged, the rest still run."""

    async def send(self, payload: T) -> None:
        self._ready()
        for handler in self._handlers:
            try:
                await handler(payload)
            except Exception:
                log.exception("signal.handler_failed", signal=self.name,
                              handler=getattr(handler, "__qualname__", repr(handler)))


class Notice(_Signal[Callable[[T], None]], Generic[T]):
    """Sync handlers, after commit, on the emitter's task: they note, never wait."""

    def send(self, payload: T) -> None:
        self._ready()
        for handler in self._handlers:
            try:
                handler(payload)
            except Exception:
                log.exception("signal.handler_failed", signal=self.name,
                              handler=getattr(handler, "__qualname__", repr(handler)))


# ---------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class TenantStatusChanged:
    partner_id: str
    tenant_id: str
    previous: str  # TenantStatus values: TRIAL, ACTIVE, SUSPENDED, CANCELLED
    status: str
    cause: str | None = None  # e.g. "usage_cap:max_dids" for an auto-suspension; None: by hand


@dataclass(frozen=True, slots=True)
class SuspensionDue:
    """A tenant with auto-suspend reached a cap: the tenants capability suspends it."""

    partner_id: str
    tenant_id: str
    cause: str  # "usage_cap:<cap>"


@dataclass(frozen=True, slots=True)
class CapTrip:
    """One extension or DID more than the tenant's cap was refused (the 409 ``usage_limit``)."""

    partner_id: str
    tenant_id: str
    cap_name: str  # max_extensions | max_dids
    cap: int
    current: int


@dataclass(frozen=True, slots=True)
class DialplanChanged:
    """Data the tenant dialplan is rendered from changed (``by``: the capability)."""

    by: str


@dataclass(frozen=True, slots=True)
class WalletChanged:
    """A partner's wallet balance after a committed ledger entry (any kind)."""

    partner_id: str
    balance_micros: int


@dataclass(frozen=True, slots=True)
class PartnerStatusChanged:
    partner_id: str
    previous: str  # PartnerStatus values: TRIAL, ACTIVE, SUSPENDED
    status: str


@dataclass(frozen=True, slots=True)
class PaymentMethodsChanged:
    """A partner's saved payment methods changed; ``default_method`` None: none left to charge."""

    partner_id: str
    default_method: str | None


@dataclass(frozen=True, slots=True)
class PartnerCreated:
    partner_id: str


@dataclass(frozen=True, slots=True)
class PricingChanged:
    """A tenant's billing profile or rate overrides changed; ``tenant_id`` None: a profile
    that any number of tenants use."""

    tenant_id: str | None


@dataclass(frozen=True, slots=True)
class TenantUnitsChanged:
    """A tenant's extensions or DIDs changed (unit history, committed); ``tenant_id`` None: any
    tenant's may have (the notices were not heard for a while)."""

    tenant_id: str | None


@dataclass(frozen=True, slots=True)
class InvoiceIssued:
    """A tenant invoice got its number and was sent (DRAFT -> SENT), committed."""

    partner_id: str
    tenant_id: str
    invoice_id: str
    total_micros: int


@dataclass(frozen=True, slots=True)
class InvoicePaid:
    partner_id: str
    tenant_id: str
    invoice_id: str


@dataclass(frozen=True, slots=True)
class ReactivationDue:
    """What suspended a tenant (``cause``, e.g. "dunning:<invoice id>") is resolved: the tenants
    capability reactivates it if that is still its stored suspension cause."""

    partner_id: str
    tenant_id: str
    cause: str


@dataclass(frozen=True, slots=True)
class TenantFlowsChanged:
    """A tenant's call-flow objects changed and committed: its flows context is re-rendered."""

    tenant_id: str


class DialplanSink(Protocol):
    """What a capability that changes dialplan data is given: it says so after commit."""

    def dialplan_changed(self) -> None: ...


@dataclass(frozen=True)
class DialplanSignal:
    """A ``DialplanSink`` that sends ``dialplan_changed`` (the tenants capability renders)."""

    signal: Notice[DialplanChanged]
    by: str

    def dialplan_changed(self) -> None:
        self.signal.send(DialplanChanged(self.by))


@dataclass(frozen=True)
class Signals:
    """Every signal between capabilities; one set per daemon, frozen at start-up."""

    # calls -> limits: a call's record, debit and usage committed (sync: the recorder's
    # writer task must not wait; limits accounts in memory and reacts on its own task).
    call_recorded: Notice[CallRecord] = field(default_factory=lambda: Notice("call_recorded"))
    # tenants -> limits: a tenant's status changed and committed (manual, auto-suspension,
    # cancellation, reactivation). Admission sees it at once; suspension ends calls.
    tenant_status_changed: AfterCommit[TenantStatusChanged] = field(
        default_factory=lambda: AfterCommit("tenant_status_changed"))
    # limits -> tenants: a cap was reached by a tenant with auto-suspend, after the alert
    # committed. The handler suspends in its own transaction (then tenant_status_changed).
    suspension_due: AfterCommit[SuspensionDue] = field(default_factory=lambda: AfterCommit("suspension_due"))
    # tenants (extensions), numbers (every DID route) -> limits: a creation or assignment
    # over a count cap was refused, after its transaction rolled back (usage.cap_reached,
    # auto-suspension).
    cap_tripped: AfterCommit[CapTrip] = field(default_factory=lambda: AfterCommit("cap_tripped"))
    # numbers -> tenants: dialplan data changed, after commit; the applier re-renders.
    dialplan_changed: Notice[DialplanChanged] = field(default_factory=lambda: Notice("dialplan_changed"))

    # wallet -> limits: a ledger entry committed; admission holds in-flight calls against
    # the new balance (sync: the recorder's writer must not wait).
    wallet_changed: Notice[WalletChanged] = field(default_factory=lambda: Notice("wallet_changed"))
    # account -> tenants (re-render the partner's tenants), limits: trial ended, activation.
    partner_status_changed: AfterCommit[PartnerStatusChanged] = field(
        default_factory=lambda: AfterCommit("partner_status_changed"))
    # payments -> wallet: inside the change's transaction (deleting the last card turns
    # auto-recharge off atomically).
    payment_methods_changed: InTransaction[PaymentMethodsChanged] = field(
        default_factory=lambda: InTransaction("payment_methods_changed"))

    # tenants -> billing profiles: a partner row was inserted (its default profiles are made
    # in the same transaction).
    partner_created: InTransaction[PartnerCreated] = field(default_factory=lambda: InTransaction("partner_created"))
    # billing profiles -> calls: a tenant's pricing changed, committed (the recorder's cached
    # billing contexts forget it).
    pricing_changed: Notice[PricingChanged] = field(default_factory=lambda: Notice("pricing_changed"))
    # invoices (unit history's NOTIFY, every daemon) -> limits: the spend cap counts the unit fees
    # of a unit added or removed mid-period at once.
    tenant_units_changed: Notice[TenantUnitsChanged] = field(
        default_factory=lambda: Notice("tenant_units_changed"))
    # invoices -> collection (charge the saved card), documents (email the PDF).
    invoice_issued: AfterCommit[InvoiceIssued] = field(default_factory=lambda: AfterCommit("invoice_issued"))
    # collection -> dunning: an invoice was paid in full.
    invoice_paid: AfterCommit[InvoicePaid] = field(default_factory=lambda: AfterCommit("invoice_paid"))
    # dunning -> tenants: the cause of a suspension is resolved.
    reactivation_due: AfterCommit[ReactivationDue] = field(default_factory=lambda: AfterCommit("reactivation_due"))
    # voicemail, IVR, ring groups, queues, time conditions, music on hold, DID routes -> flows:
    # a tenant's call-flow objects changed, committed; its flows context is re-rendered.
    tenant_flows_changed: Notice[TenantFlowsChanged] = field(
        default_factory=lambda: Notice("tenant_flows_changed"))

    def freeze(self) -> None:
        for f in fields(self):
            getattr(self, f.name).freeze()

    def all(self) -> dict[str, _Signal[Any]]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
