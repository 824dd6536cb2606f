"""Address validation (seed 003 appendix C), examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e911.address import STATES, Address, AddressInvalid, suggest_city, validate

GOOD = Address(street="1234 Main St", unit="Suite 200", city="Anytown", state="ar", zip="72211")


def test_a_dispatchable_address_is_kept_with_its_suite() -> None:
    clean = validate(GOOD)
    assert clean.unit == "Suite 200" and clean.state == "AR"
    assert clean.one_line() == "1234 Main St, Suite 200, Anytown, AR 72211"


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("street", "PO Box 123", "PO box"), ("street", "P.O. Box 9", "PO box"), ("street", "Post Office Box 5", "PO box"),
    ("street", "123 Main St PMB 44", "PO box"), ("street", "Main St", "building number"),
    ("street", "c/o Registered Agents Inc 1 Main St", "registered agent"),
    ("street", "100 Registered Agent Way", "registered agent"), ("street", "12", "building number"),
    ("city", "St. Louis", "Saint Louis"), ("city", "O'Fallon", "OFallon"), ("city", "Winston-Salem", "Winston Salem"),
    ("state", "XX", "USPS"), ("zip", "7221", "five digits"), ("zip", "00000", "not a real"),
    ("country", "CA", "US addresses"), ("unit", "PO Box 7", "PO box"),
])
def test_refusals_name_the_field_and_the_reason(field: str, value: str, needle: str) -> None:
    with pytest.raises(AddressInvalid) as err:
        validate(_with(field, value))
    assert err.value.field == field and needle in err.value.reason


def _with(field: str, value: str) -> Address:
    values = {f: getattr(GOOD, f) for f in ("street", "unit", "city", "state", "zip", "country")}
    values[field] = value
    return Address(**values)


def test_suggestions() -> None:
    assert suggest_city("St. Louis") == "Saint Louis"
    assert suggest_city("O'Fallon") == "OFallon"
    assert suggest_city("Ft. Worth") == "Fort Worth"


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=10)
streets = st.builds(lambda n, w, s: f"{n} {w} {s}", st.integers(1, 99999), words.filter(
    lambda w: w.upper() not in {"BOX", "POB", "PMB", "CMRA", "MAILBOX"}), st.sampled_from(["St", "Ave", "Rd", "Blvd"]))
cities = st.lists(words, min_size=1, max_size=3).map(" ".join)
zips = st.integers(1, 99999).map(lambda z: f"{z:05d}")


@settings(max_examples=300)
@given(streets, cities, st.sampled_from(sorted(STATES)), zips, st.one_of(st.none(), st.integers(1, 999).map(
    lambda n: f"Suite {n}")))
def test_valid_addresses_pass_and_validation_is_idempotent(street: str, city: str, state: str, zip_: str,
                                                           unit: str | None) -> None:
    once = validate(Address(street=street, city=city, state=state.lower(), zip=zip_, unit=unit))
    assert validate(once) == once
    assert once.unit == unit


@given(st.integers(1, 99999), st.sampled_from(["PO Box", "P.O. Box", "p o box", "POST OFFICE BOX", "PMB"]),
       st.integers(1, 9999))
def test_po_boxes_are_always_refused(n: int, box: str, number: int) -> None:
    with pytest.raises(AddressInvalid) as err:
        validate(_with("street", f"{box} {number}"))
    assert err.value.field == "street"
    with pytest.raises(AddressInvalid):
        validate(_with("street", f"{n} Main St {box} {number}"))


@given(cities, st.sampled_from(list(".,'#&-/!")), st.integers(0, 5))
def test_punctuation_in_the_city_is_refused_with_a_suggestion(city: str, mark: str, at: int) -> None:
    bad = city[:at] + mark + city[at:]
    with pytest.raises(AddressInvalid) as err:
        validate(_with("city", bad))
    assert err.value.field == "city"


@given(st.text(max_size=60), st.text(max_size=30), st.text(max_size=4), st.text(max_size=12))
def test_arbitrary_input_never_crashes(street: str, city: str, state: str, zip_: str) -> None:
    try:
        validate(Address(street=street, city=city, state=state, zip=zip_))
    except AddressInvalid:
        pass


@pytest.mark.parametrize("field", ["street", "unit", "city", "state", "zip"])
@pytest.mark.parametrize("bad", ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u2028"])
def test_control_characters_are_refused_not_folded_into_spaces(field: str, bad: str) -> None:
    value = {"street": "1234 Main{}St", "unit": "Suite{}200", "city": "Little{}Rock", "state": "A{}R",
             "zip": "72211{}"}[field].format(bad)
    with pytest.raises(AddressInvalid) as err:
        validate(_with(field, value))
    assert err.value.field == field and "one line" in err.value.reason
