"""The partner step of admission (issue 14): trial classes, suspended partner, the wallet held like
a spend cap; and the in-memory partner state that never lets a recorded debit go uncounted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.classify import CallClass
from cdr_ingest.rates import Rate, Rounding
from cdr_ingest.rating import billable_seconds, price
from controlplane.limits.state import SETTLE_GRACE_S, PartnerState
from controlplane.limits.policy import (CAUSE_FORBIDDEN, Account, Ledger, Limits, Reason, Usage, decide,
                                        wallet_seconds)
from provisioning.model import PartnerStatus

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ACTIVE, TRIAL, SUSPENDED = PartnerStatus.ACTIVE, PartnerStatus.TRIAL, PartnerStatus.SUSPENDED


def wholesale(per_minute: int = 10_000, min_s: int = 6, inc: int = 6) -> Rate:
    return Rate("w", "1", per_minute, 0, min_s, inc, Rounding.HALF_UP, EPOCH)


def call(account: Account, cls: CallClass = CallClass.LOCAL, w: Rate | None = None, *, limits: Limits = Limits(),
         ledger: Ledger | None = None, call_id: str = "c", retail: Rate | None = None):  # type: ignore[no-untyped-def]
    return decide(limits, True, Usage(), ledger or Ledger(), call_id, retail, 14400, account=account,
                  call_class=cls, wholesale=w if w is not None else wholesale())


@pytest.mark.parametrize("cls", [CallClass.INTERNATIONAL, CallClass.PREMIUM])
def test_a_trial_may_not_dial_international_or_premium(cls: CallClass) -> None:
    d = call(Account(TRIAL, 0), cls)
    assert (d.admit, d.reason, d.cause) == (False, Reason.TRIAL_RESTRICTED, CAUSE_FORBIDDEN)
    assert call(Account(ACTIVE, 10**9), cls).admit


@pytest.mark.parametrize("cls", [CallClass.LOCAL, CallClass.TOLL_FREE])
def test_a_trial_calls_locally_at_a_zero_balance_and_holds_nothing(cls: CallClass) -> None:
    d = call(Account(TRIAL, 0), cls)
    assert d.admit and d.limit_s is None and d.hold is not None and d.hold.wallet_micros == 0


def test_a_suspended_partner_is_refused_whatever_its_wallet() -> None:
    d = call(Account(SUSPENDED, 10**12))
    assert (d.admit, d.reason, d.cause) == (False, Reason.PARTNER_SUSPENDED, CAUSE_FORBIDDEN)


@pytest.mark.parametrize("available", [0, -1, -5_000_000])
def test_an_active_partner_at_zero_is_refused_rated_or_not(available: int) -> None:
    for w in (wholesale(), None):
        d = decide(Limits(), True, Usage(), Ledger(), "c", None, 14400, account=Account(ACTIVE, available),
                   call_class=CallClass.LOCAL, wholesale=w)
        assert (d.admit, d.reason, d.cause) == (False, Reason.WALLET_EMPTY, CAUSE_FORBIDDEN)


def test_less_than_the_first_unit_is_refused() -> None:
    w = wholesale(per_minute=60_000)  # 1000 micros a second, 6 s minimum
    assert not call(Account(ACTIVE, 5_999), w=w).admit
    d = call(Account(ACTIVE, 6_000), w=w)
    assert d.admit and d.limit_s == 6 and d.hold is not None and d.hold.wallet_micros == 6_000


def test_sixty_seconds_of_credit_give_a_sixty_second_cut_off_held_in_full() -> None:
    w = wholesale()
    credit = price(w, 60)
    d = call(Account(ACTIVE, credit), w=w)
    assert d.admit and d.limit_s == 60 and d.hold is not None and d.hold.wallet_micros == credit
    # The hold is the whole balance: the next call sees nothing available.
    assert call(Account(ACTIVE, credit - d.hold.wallet_micros), w=w).reason is Reason.WALLET_EMPTY


def test_the_tightest_of_wallet_and_caps_wins() -> None:
    w = wholesale()
    d = call(Account(ACTIVE, price(w, 600)), w=w, limits=Limits(monthly_minutes=2), retail=w)
    assert d.limit_s == 120 and d.hold is not None and d.hold.wallet_micros == price(w, 120)
    d = call(Account(ACTIVE, price(w, 60)), w=w, limits=Limits(monthly_minutes=2), retail=w)
    assert d.limit_s == 60


def test_emergency_and_internal_never_draw_on_the_wallet() -> None:
    for cls in (CallClass.EMERGENCY, CallClass.INTERNAL):
        d = call(Account(ACTIVE, 0), cls)
        assert d.admit and d.hold is not None and d.hold.wallet_micros == 0


def test_unrated_above_zero_is_not_timed_by_the_wallet() -> None:
    assert wallet_seconds(None, 1) is None
    assert wallet_seconds(wholesale(), 0) == 0


@given(st.integers(1, 120_000), st.integers(1, 10_000_000), st.sampled_from([1, 6, 30, 60]),
       st.integers(0, 60), st.integers(1, 30))
def test_n_parallel_calls_never_hold_more_than_the_balance(per_minute: int, balance: int, inc: int, min_s: int,
                                                           n: int) -> None:
    """Like a spend cap: what admitted calls may cost the partner never exceeds the balance."""
    w = Rate("w", "1", per_minute, 0, min_s, inc, Rounding.HALF_UP, EPOCH)
    partner = PartnerState("p", ACTIVE, balance)
    worst = 0
    for i in range(n):
        d = call(partner.account(0.0), w=w, call_id=f"c{i}")
        if d.admit:
            assert d.hold is not None and d.limit_s is not None
            partner.hold(f"c{i}", d.hold.wallet_micros)
            worst += price(w, billable_seconds(d.limit_s, min_s, inc))
    assert worst <= balance
    assert partner.available(0.0) >= 0


def test_a_recorded_debit_stays_held_until_a_notice_and_the_grace() -> None:
    p = PartnerState("p", ACTIVE, 1_000)
    p.hold("a", 600)
    assert p.available(0.0) == 400
    p.settle("a", 500, now=10.0)  # recorded: the balance (1000) does not show the 500 yet
    assert p.available(10.0) == 500
    assert p.available(100.0) == 500, "no notice: still held, however long"
    p.noticed(500)  # the notice read after it
    assert p.available(10.5) == 0, "within the grace a notice may be an older commit's: counted twice"
    assert p.available(10.0 + SETTLE_GRACE_S) == 500


def test_a_notice_of_an_older_commit_read_late_does_not_release_the_debit() -> None:
    p = PartnerState("p", ACTIVE, 1_000)
    p.settle("a", 300, now=5.0)
    p.noticed(2_000)  # a top-up committed before the call's record, read after call_recorded
    assert p.available(5.1) == 1_700  # the debit still counts
    p.noticed(1_700)  # the record's own notice
    assert p.available(5.0 + SETTLE_GRACE_S) == 1_700


def test_a_read_balance_includes_the_debits_recorded_before_it() -> None:
    p = PartnerState("p", ACTIVE, 1_000)
    p.settle("a", 300, now=5.0)
    p.settle("b", 100, now=7.0)
    p.read(ACTIVE, 700, asked_at=6.0)  # includes a, maybe not b
    assert p.available(7.0) == 600


def test_a_trial_settles_nothing() -> None:
    p = PartnerState("p", TRIAL, 0)
    p.settle("a", 300, now=1.0)
    assert p.available(1.0) == 0 and not p.settling
