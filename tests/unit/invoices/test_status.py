"""The invoice status table (controlplane/invoices/status.py)."""

from __future__ import annotations

import pytest

from controlplane.invoices import status
from controlplane.invoices.models import InvoiceStatus as S


def test_void_only_from_draft() -> None:
    assert [s for s in S if status.allowed(s, S.VOID)] == [S.DRAFT]


@pytest.mark.parametrize("final", [S.PAID, S.VOID, S.CANCELLED])
def test_final_statuses_go_nowhere(final: S) -> None:
    assert not any(status.allowed(final, s) for s in S)


def test_payments() -> None:
    assert status.after_payment(S.SENT, 100, 40) is S.PARTIALLY_PAID
    assert status.after_payment(S.PARTIALLY_PAID, 100, 100) is S.PAID
    assert status.after_payment(S.OVERDUE, 100, 100) is S.PAID
    with pytest.raises(status.TransitionRefused):
        status.after_payment(S.DRAFT, 100, 100)
    with pytest.raises(status.TransitionRefused):
        status.check(S.PAID, S.SENT)
