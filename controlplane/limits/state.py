"""Admission's per-partner and per-tenant state in memory (kept by ``controlplane.limits.engine``):
a partner's status, balance and the wallet holds and recorded debits counted against it, and a
tenant's limits, cycle usage and calls in progress. Pure: no I/O, no clock of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cdr_ingest.records import TenantBilling
from controlplane.limits.policy import Account, Ledger, Limits, Usage
from provisioning.access import call_access
from provisioning.model import PartnerStatus, TenantStatus

SETTLE_GRACE_S = 1.0  # a recorded debit stays held this long after the first balance notice read after it


@dataclass(slots=True)
class PartnerState:
    """One partner as admission sees it: status, wallet balance, and what is held against it."""

    partner_id: str
    status: PartnerStatus
    balance_micros: int
    holds: dict[str, int] = field(default_factory=dict)  # call id -> wallet micros, calls in progress
    # call id -> (debit, recorded at (monotonic), a balance notice was read since)
    settling: dict[str, tuple[int, float, bool]] = field(default_factory=dict)
    held_micros: int = 0  # sum of ``holds``
    settling_micros: int = 0  # sum of the debits in ``settling``
    refreshed_at: float = 0.0

    def available(self, now: float) -> int:
        """Balance minus wallet holds and recorded debits the balance may not show yet.

        Called on every admission: O(1) plus the entries it drops. ``settling`` is in
        recording order and a notice marks every entry then present, so the seen ones are
        a prefix and, within it, the expired ones too: the first entry that is unseen or
        within its grace ends the sweep (was a walk over every entry per call, ~2% of the
        daemon's CPU at 100 calls/s, docs/performance.md)."""
        while self.settling:
            call_id, (_, at, seen) = next(iter(self.settling.items()))
            if not (seen and now - at >= SETTLE_GRACE_S):
                break
            self._drop(call_id)
        return self.balance_micros - self.held_micros - self.settling_micros

    def _drop(self, call_id: str) -> None:
        self.settling_micros -= self.settling.pop(call_id)[0]

    def account(self, now: float) -> Account:
        return Account(self.status, self.available(now))

    def hold(self, call_id: str, micros: int) -> None:
        if micros > 0 and call_id not in self.holds:
            self.holds[call_id] = micros
            self.held_micros += micros

    def release(self, call_id: str) -> None:
        self.held_micros -= self.holds.pop(call_id, 0)

    def settle(self, call_id: str, debit: int, now: float) -> None:
        """The call was recorded with ``debit`` on the wallet: held until the balance shows it."""
        self.release(call_id)
        if debit > 0 and self.status is PartnerStatus.ACTIVE:
            if call_id in self.settling:
                self._drop(call_id)
            self.settling[call_id] = (debit, now, False)
            self.settling_micros += debit

    def noticed(self, balance_micros: int) -> None:
        """A committed balance (the wallet's notice): every debit settled before it may go after the grace."""
        self.balance_micros = balance_micros
        for call_id, (debit, at, _) in self.settling.items():
            self.settling[call_id] = (debit, at, True)

    def read(self, status: PartnerStatus, balance_micros: int, asked_at: float) -> None:
        """Status and balance read from the database (asked at ``asked_at``): debits recorded before
        the read are in that balance."""
        self.status, self.balance_micros, self.refreshed_at = status, balance_micros, asked_at
        for call_id, (_, at, _) in list(self.settling.items()):
            if at <= asked_at:
                self._drop(call_id)


@dataclass(slots=True)
class TenantState:
    tenant_id: str
    partner_id: str
    status: str
    timezone: str
    limits: Limits
    has_limits: bool
    usage: Usage
    cycle_start: datetime
    cycle_end: datetime
    ledger: Ledger = field(default_factory=Ledger)
    # call id -> (admitted at, channel, expires at)
    calls: dict[str, tuple[datetime, str, datetime]] = field(default_factory=dict)
    billing: TenantBilling | None = None
    billing_until: float = 0.0
    partner: PartnerState | None = None  # shared by the partner's tenants; None: not known (ACTIVE)
    fees_micros: int = 0  # the base and unit fees counted in ``usage.spend_micros`` (profiles' rule)

    @property
    def calls_allowed(self) -> bool:
        """Its phones may place calls: the status rule (provisioning.access), with its partner's status."""
        partner = self.partner.status if self.partner is not None else PartnerStatus.ACTIVE
        return call_access(TenantStatus(self.status), partner).outbound
