"""The dialled-number rule (cdr_ingest.dialing): what reaches the trunk, as which number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.classify import CallClass, classify, normalize_e164
from cdr_ingest.dialing import FORMS, DialForm, destination, is_destination


@pytest.mark.parametrize(("dialled", "number"), [
    ("2125550100", "+12125550100"),
    ("12125550100", "+12125550100"),
    ("+12125550100", "+12125550100"),
    ("01112125550100", "+12125550100"),
    ("011442071234567", "+442071234567"),
    ("+442071234567", "+442071234567"),
    ("+29022222", "+29022222"),  # 8 digits: the shortest outside +1
    ("+999999999999999", "+999999999999999"),  # 15: the E.164 maximum
])
def test_numbers_and_the_number_the_trunk_gets(dialled: str, number: str) -> None:
    assert destination(dialled) == number
    assert is_destination(number) and normalize_e164(dialled) == number


@pytest.mark.parametrize("dialled", [
    "+1212555*0100", "011*442071234567", "+101", "+1415555*0123", "+1 2125550100", "212-555-0100",
    "(212) 5550100", "+12125550100 ", " 2125550100", "+12125550100;user=phone", "++12125550100",
    "+1212555010", "+121255501000", "+10125550100", "+11125550100", "+12121550100",  # NPA/NXX 0/1
    "+19115550123", "+12124110123",  # N11
    "+2904567", "+1234567890123456", "+0442071234567", "0112", "011", "+", "", "911", "101",
    "5550100", "\u0662\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0660\u0660", "\uff12125550100",
])
def test_anything_else_is_refused_never_cleaned_up(dialled: str) -> None:
    assert destination(dialled) is None
    assert classify(dialled) in (CallClass.INVALID, CallClass.EMERGENCY, CallClass.INTERNAL)


def test_non_strings_are_refused() -> None:
    assert destination(None) is None and destination(2125550100) is None and destination(b"+1212") is None


def test_forms_are_fixed_length_digit_patterns() -> None:
    assert all("." not in f.pattern and "!" not in f.pattern for f in FORMS)
    with pytest.raises(ValueError):
        DialForm("+1X.")
    with pytest.raises(ValueError):
        DialForm("+1[a-z]XX")


_digits = st.text(alphabet="0123456789", min_size=1, max_size=18)


@given(st.one_of(st.text(max_size=24), _digits, _digits.map(lambda d: "+" + d), _digits.map(lambda d: "011" + d)))
def test_a_destination_is_plus_and_digits_of_e164_length(dialled: str) -> None:
    number = destination(dialled)
    if number is None:
        return
    assert is_destination(number)
    assert number[0] == "+" and number[1:].isascii() and number[1:].isdigit()
    if number.startswith("+1"):
        assert len(number) == 12 and number[2] in "23456789" and number[5] in "23456789"
    else:
        assert 8 <= len(number) - 1 <= 15 and number[1] in "23456789"
    # Nothing was stripped: the string itself was digits (and one leading '+').
    body = dialled[1:] if dialled.startswith("+") else dialled
    assert body.isascii() and body.isdigit()


@given(st.sampled_from(["2125550100", "+12125550100", "011442071234567", "+442071234567"]),
       st.integers(min_value=0, max_value=15), st.sampled_from(list("*#-. ,;a+()xN/@\u0660")))
def test_a_number_with_any_other_character_inserted_is_refused(number: str, at: int, junk: str) -> None:
    at = min(at, len(number))
    if junk == "+" and at == 0 and not number.startswith("+"):
        return  # "+2125550100": a different (international) number, judged on its own
    assert destination(number[:at] + junk + number[at:]) is None


@given(st.one_of(_digits, _digits.map(lambda d: "+" + d), _digits.map(lambda d: "011" + d)))
def test_forms_are_disjoint_so_one_match_decides(dialled: str) -> None:
    matching = [f for f in FORMS if f.regex.fullmatch(dialled)]
    assert len(matching) <= 1, [f.pattern for f in matching]
    assert destination(dialled) == (matching[0].rewrite(dialled) if matching else None)
