"""The signals between capabilities: frozen at start-up, ordered, and each kind's error rule."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.signals import (AfterCommit, DialplanChanged, DialplanSignal, InTransaction, Notice,
                                  SignalFrozen, SignalNotFrozen, Signals, TenantStatusChanged)

CHANGE = TenantStatusChanged(partner_id="ptr_1", tenant_id="ten_1", previous="ACTIVE", status="SUSPENDED")


async def test_handlers_run_in_subscription_order_once_frozen() -> None:
    signal: AfterCommit[TenantStatusChanged] = AfterCommit("s")
    seen: list[tuple[str, str]] = []

    async def first(change: TenantStatusChanged) -> None:
        seen.append(("first", change.status))

    async def second(change: TenantStatusChanged) -> None:
        seen.append(("second", change.tenant_id))

    signal.connect(first)
    signal.connect(second)
    with pytest.raises(SignalNotFrozen):  # sent before every plugin subscribed: a wiring bug
        await signal.send(CHANGE)
    assert seen == []
    signal.freeze()
    await signal.send(CHANGE)
    assert seen == [("first", "SUSPENDED"), ("second", "ten_1")]
    with pytest.raises(SignalFrozen):
        signal.connect(first)
    assert signal.handlers == (first, second)


async def test_an_after_commit_handler_failing_does_not_stop_the_others() -> None:
    signal: AfterCommit[TenantStatusChanged] = AfterCommit("s")
    seen: list[str] = []

    async def broken(change: TenantStatusChanged) -> None:
        raise RuntimeError("boom")

    async def fine(change: TenantStatusChanged) -> None:
        seen.append(change.tenant_id)

    signal.connect(broken)
    signal.connect(fine)
    signal.freeze()
    await signal.send(CHANGE)  # the change committed: the failure is logged, not raised
    assert seen == ["ten_1"]


async def test_an_in_transaction_handler_failing_reaches_the_emitter() -> None:
    signal: InTransaction[TenantStatusChanged] = InTransaction("s")
    conns: list[Any] = []

    async def check(conn: Any, change: TenantStatusChanged) -> None:
        conns.append(conn)
        raise ValueError("refused")

    signal.connect(check)
    signal.freeze()
    marker = object()
    with pytest.raises(ValueError):  # so the emitter's transaction rolls back
        await signal.send(marker, CHANGE)  # type: ignore[arg-type]
    assert conns == [marker]


def test_a_notice_is_sync_and_survives_a_failing_handler() -> None:
    signal: Notice[DialplanChanged] = Notice("n")
    seen: list[str] = []
    signal.connect(lambda change: seen.append("a:" + change.by))
    signal.connect(lambda change: 1 / 0)  # type: ignore[arg-type,func-returns-value]
    signal.connect(lambda change: seen.append("c:" + change.by))
    signal.freeze()
    DialplanSignal(signal, by="numbers").dialplan_changed()
    assert seen == ["a:numbers", "c:numbers"]


def test_the_set_freezes_every_signal() -> None:
    signals = Signals()
    assert set(signals.all()) == {"call_recorded", "tenant_status_changed", "suspension_due", "cap_tripped",
                                  "dialplan_changed", "wallet_changed", "partner_status_changed",
                                  "payment_methods_changed", "partner_created", "invoice_issued", "invoice_paid",
                                  "reactivation_due", "pricing_changed", "tenant_flows_changed",
                                  "tenant_units_changed"}
    assert not any(s.frozen for s in signals.all().values())
    signals.freeze()
    assert all(s.frozen for s in signals.all().values())
    other = Signals()  # each daemon (and each test app) has its own set
    assert not other.tenant_status_changed.frozen
