"""Pure cores of the numbers capability: vanity patterns, CNAM rules, the port lifecycle, prices."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.numbers import cnam, vanity
from controlplane.numbers.carrier import InventoryError, parse_inventory
from controlplane.numbers.porting import IllegalTransition, PortAction, PortStatus, transition
from controlplane.numbers.pricing import price


def test_seed_examples() -> None:
    assert vanity.parse("877-555-XXXX") == "877555XXXX"
    assert vanity.parse("8XX-OUR-FOOD") == "8XX6873663"
    assert vanity.parse("888-XXX-1000") == "888XXX1000"
    assert vanity.matches(vanity.parse("8XX-OUR-FOOD"), "+18446873663")
    assert not vanity.matches(vanity.parse("8XX-OUR-FOOD"), "+18446873664")
    assert vanity.sql_like("877555XXXX") == "+1877555____"


@pytest.mark.parametrize("bad", ["877-555", "501-555-XXXX", "877-555-XXX?", "7XX-555-1234", ""])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(vanity.BadPattern):
        vanity.parse(bad)


positions = st.lists(st.sampled_from(list("0123456789X") + list("ABCDEFGHIJKLMNOPQRSTUVWYZ")), min_size=7, max_size=7)


@given(st.sampled_from(vanity.TOLL_FREE_NPAS), positions, st.data())
def test_every_filling_of_a_pattern_matches_and_a_changed_fixed_digit_does_not(
        npa: str, rest: list[str], data: st.DataObject) -> None:
    parsed = vanity.parse(npa + "".join(rest))
    filled = "".join(data.draw(st.sampled_from("0123456789")) if c == "X" else c for c in parsed)
    assert vanity.matches(parsed, "+1" + filled)
    fixed = [i for i, c in enumerate(parsed) if c != "X"]
    i = data.draw(st.sampled_from(fixed))
    other = filled[:i] + str((int(filled[i]) + 1) % 10) + filled[i + 1:]
    assert not vanity.matches(parsed, "+1" + other)
    # The SQL LIKE says the same as the matcher.
    like = vanity.sql_like(parsed)
    assert all(lc == "_" or lc == nc for lc, nc in zip(like, "+1" + filled))


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWYZ", min_size=7, max_size=7))
def test_letters_are_keypad_digits(word: str) -> None:
    assert vanity.parse("800" + word) == "800" + vanity.spell(word)


@pytest.mark.parametrize("ok", ["ACME PLUMBING", "O'Brien & Co.", "Smith, Jones", "A-1 Auto", "Scunthorpe"])
def test_cnam_accepts_carrier_characters(ok: str) -> None:
    assert cnam.validate(ok) == ok


@pytest.mark.parametrize("bad", ["A" * 16, "ACME!", "Café", "   ", "...", "Shit Happens", "F.U.C.K Inc"])
def test_cnam_refusals(bad: str) -> None:
    with pytest.raises(cnam.CnamInvalid):
        cnam.validate(bad)


def test_effective_cnam() -> None:
    assert cnam.effective("DID NAME", "TENANT") == "DID NAME"
    assert cnam.effective(None, "TENANT") == "TENANT"


def test_port_happy_path_and_resubmit() -> None:
    s = transition(PortStatus.PENDING, PortAction.SUBMIT)
    s = transition(s, PortAction.REJECT, reason="name mismatch")
    s = transition(s, PortAction.RESUBMIT)
    s = transition(s, PortAction.FOC, foc_date=date(2026, 5, 1))
    assert transition(s, PortAction.COMPLETE) is PortStatus.COMPLETED


@pytest.mark.parametrize(("status", "action"), [
    (PortStatus.PENDING, PortAction.COMPLETE), (PortStatus.COMPLETED, PortAction.CANCEL),
    (PortStatus.CANCELLED, PortAction.RESUBMIT), (PortStatus.SUBMITTED, PortAction.COMPLETE),
    (PortStatus.PENDING, PortAction.RESUBMIT)])
def test_illegal_transitions(status: PortStatus, action: PortAction) -> None:
    with pytest.raises(IllegalTransition):
        transition(status, action, foc_date=date(2026, 1, 1), reason="x")


def test_foc_and_reject_need_their_datum() -> None:
    with pytest.raises(ValueError, match="foc_date"):
        transition(PortStatus.SUBMITTED, PortAction.FOC)
    with pytest.raises(ValueError, match="reason"):
        transition(PortStatus.SUBMITTED, PortAction.REJECT, reason=" ")


def test_prices_from_the_tier() -> None:
    p = price("STARTER", "local")
    assert (p.monthly, p.setup, p.per_minute) == (1_750_000, 1_000_000, 20_000)
    assert price("BUSINESS", "toll_free").monthly == 2_000_000
    assert price("ENTERPRISE", "local").monthly is None


def test_inventory_blocks_and_numbers() -> None:
    rows = list(parse_inventory("npa,nxx,first,last,state,city,rate_center\n501,555,0,9,ar,Little Rock,LTLROCK\n"))
    assert len(rows) == 10 and rows[0].number == "+15015550000" and rows[0].state == "AR"
    tf = list(parse_inventory("number,state,city,rate_center\n+18776873663,,,\n"))
    assert tf[0].kind == "toll_free" and tf[0].state is None
    with pytest.raises(InventoryError):
        list(parse_inventory("number,state\n5015550000,\n"))
