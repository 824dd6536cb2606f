"""PartnerState keeps the sum of its settling debits as it goes (admission reads it per call):
after any sequence of settles, notices, reads and admissions it equals the debits still held,
which are exactly the ones the old full walk would have kept (time moving forward)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from controlplane.limits.state import SETTLE_GRACE_S, PartnerState
from provisioning.model import PartnerStatus

ACTIVE = PartnerStatus.ACTIVE

step = st.one_of(
    st.tuples(st.just("settle"), st.integers(0, 5), st.integers(0, 900)),
    st.tuples(st.just("notice"), st.integers(0, 5000), st.just(0)),
    st.tuples(st.just("read"), st.integers(0, 5000), st.just(0)),
    st.tuples(st.just("available"), st.just(0), st.just(0)),
    st.tuples(st.just("tick"), st.integers(0, 3), st.just(0)),
)


@given(st.lists(step, max_size=60))
def test_the_running_sum_is_the_debits_a_full_walk_keeps(steps: list[tuple[str, int, int]]) -> None:
    p = PartnerState("p", ACTIVE, 10_000)
    now, read_at = 0.0, 0.0
    for kind, a, b in steps:
        now += 0.25
        if kind == "settle":
            p.settle(f"c{a}", b, now)
        elif kind == "notice":
            p.noticed(a)
        elif kind == "read":
            read_at = now - 0.5
            p.read(ACTIVE, a, read_at)
        elif kind == "tick":
            now += a * SETTLE_GRACE_S / 2
        got = p.available(now)
        kept = {c: d for c, (d, at, seen) in p.settling.items() if not (seen and now - at >= SETTLE_GRACE_S)}
        assert kept == {c: d for c, (d, _, _) in p.settling.items()}, "an expired seen debit was left behind"
        assert p.settling_micros == sum(kept.values())
        assert got == p.balance_micros - p.held_micros - sum(kept.values())


def test_the_ledger_sums_follow_every_hold_set_replaced_and_released() -> None:
    from controlplane.limits.policy import Hold, Holds, Ledger, Pool

    ledger = Ledger({"a": Hold("a", Pool.OUTBOUND, 60, 100)})
    ledger.holds["b"] = Hold("b", Pool.TWO_WAY, 30, 50)
    ledger.holds["a"] = Hold("a", Pool.OUTBOUND, 120, 300)  # replaced: counted once
    assert ledger.reserved() == (150, 350)
    assert (ledger.in_pool(Pool.OUTBOUND), ledger.in_pool(Pool.TWO_WAY), ledger.in_pool(Pool.INBOUND)) == (1, 1, 0)
    assert ledger.holds.pop("a") is not None and ledger.holds.pop("zz", None) is None
    del ledger.holds["b"]
    assert ledger.reserved() == (0, 0) and ledger.in_pool(Pool.OUTBOUND) == 0
    try:
        ledger.holds.update({"c": Hold("c", None)})
    except TypeError:
        pass
    else:
        raise AssertionError("a bulk update would bypass the sums")
    assert isinstance(ledger.holds, Holds)
