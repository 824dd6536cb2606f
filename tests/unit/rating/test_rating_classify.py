from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr_ingest.classify import CallClass, classify, normalize_e164, rating_digits

C = CallClass


@pytest.mark.parametrize(
    ("dialed", "expected"),
    [
        # internal: 2-6 digit extensions
        ("12", C.INTERNAL),
        ("101", C.INTERNAL),
        ("4567", C.INTERNAL),
        ("123456", C.INTERNAL),
        # emergency, with and without the outside-line prefix 9
        ("911", C.EMERGENCY),
        ("933", C.EMERGENCY),
        ("9911", C.EMERGENCY),
        ("9933", C.EMERGENCY),
        # local NANP: E.164, 1+10, 10 digits
        ("+14155550123", C.LOCAL),
        ("14155550123", C.LOCAL),
        ("4155550123", C.LOCAL),
        ("+12125550123", C.LOCAL),
        # toll-free NPAs
        ("+18005550123", C.TOLL_FREE),
        ("18335550123", C.TOLL_FREE),
        ("8445550123", C.TOLL_FREE),
        ("+18555550123", C.TOLL_FREE),
        ("+18665550123", C.TOLL_FREE),
        ("+18775550123", C.TOLL_FREE),
        ("+18885550123", C.TOLL_FREE),
        ("+18009760123", C.TOLL_FREE),  # 976 exchange inside a toll-free NPA stays toll-free
        # premium
        ("+19005550123", C.PREMIUM),
        ("19005550123", C.PREMIUM),
        ("+12129761234", C.PREMIUM),
        ("2129761234", C.PREMIUM),
        # international
        ("011442079460123", C.INTERNATIONAL),
        ("+442079460123", C.INTERNATIONAL),
        ("+33142685300", C.INTERNATIONAL),
        ("+29022222", C.INTERNATIONAL),  # 8 digits incl. country code (Saint Helena)
        ("01114155550123", C.LOCAL),  # 011 + 1 is NANP after all
        # invalid: nothing is stripped (the dialplan strips nothing either)
        (" 911 ", C.INVALID),
        ("+1 (415) 555-0123", C.INVALID),
        ("415.555.0123", C.INVALID),
        ("+1415555*0123", C.INVALID),
        ("011*442071234567", C.INVALID),
        ("+101", C.INVALID),
        ("+2904567", C.INVALID),  # 7 digits: under the 8 of E.164 outside +1
        ("", C.INVALID),
        ("   ", C.INVALID),
        ("1", C.INVALID),
        ("5", C.INVALID),
        ("5550123", C.INVALID),  # 7-digit local dialing: area code unknown
        ("1234567", C.INVALID),
        ("+", C.INVALID),
        ("++14155550123", C.INVALID),
        ("+0442079460123", C.INVALID),
        ("+1415555012", C.INVALID),  # 9 NANP digits
        ("+141555501234", C.INVALID),  # 11 NANP digits
        ("+10155550123", C.INVALID),  # NPA starting 0
        ("+11155550123", C.INVALID),  # NPA starting 1
        ("+14151550123", C.INVALID),  # NXX starting 1
        ("+19115550123", C.INVALID),  # N11 is not an area code
        ("+14154110123", C.INVALID),  # N11 is not an exchange
        ("0114420", C.INVALID),  # too short for international
        ("+1234567890123456", C.INVALID),  # 16 digits > E.164 max
        ("9" * 200, C.INVALID),
        ("abc", C.INVALID),
        ("41555501ab", C.INVALID),
        ("*97", C.INVALID),
        ("#", C.INVALID),
        ("\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663", C.INVALID),  # Arabic-Indic digits
        ("\uff14\uff11\uff15", C.INVALID),  # full-width digits
        ("415\x005550123", C.INVALID),
    ],
)
def test_classify_table(dialed: str, expected: CallClass) -> None:
    assert classify(dialed) is expected


def test_classify_non_string_is_invalid() -> None:
    assert classify(None) is C.INVALID
    assert classify(4155550123) is C.INVALID
    assert classify(b"911") is C.INVALID


def test_extension_flag() -> None:
    assert classify("1234567", callee_is_extension=True) is C.INTERNAL
    assert classify("101", callee_is_extension=False) is C.INVALID
    assert classify("+14155550123", callee_is_extension=False) is C.LOCAL
    # emergency can never be shadowed by an extension of the same digits
    assert classify("911", callee_is_extension=True) is C.EMERGENCY
    assert classify("9911", callee_is_extension=True) is C.EMERGENCY
    # garbage stays invalid even when the router claims it is an extension
    assert classify("abc", callee_is_extension=True) is C.INVALID


@pytest.mark.parametrize(
    ("dialed", "expected"),
    [
        ("4155550123", "+14155550123"),
        ("14155550123", "+14155550123"),
        ("+14155550123", "+14155550123"),
        ("(415) 555-0123", None),
        ("011442079460123", "+442079460123"),
        ("+442079460123", "+442079460123"),
        ("911", None),
        ("101", None),
        ("5550123", None),
        ("", None),
        ("+0123456789", None),
        ("x", None),
    ],
)
def test_normalize_e164_nanp(dialed: str, expected: str | None) -> None:
    assert normalize_e164(dialed) == expected


def test_rating_digits() -> None:
    assert rating_digits("4155550123") == "14155550123"
    assert rating_digits("nope") is None


@given(st.text())
def test_classify_never_raises(text: str) -> None:
    assert isinstance(classify(text), CallClass)
    assert isinstance(classify(text, callee_is_extension=True), CallClass)
    assert isinstance(classify(text, callee_is_extension=False), CallClass)
    result = normalize_e164(text)
    assert result is None or (result.startswith("+") and result[1:].isascii() and result[1:].isdigit())


@given(st.text(alphabet="+0123456789 -()", max_size=40))
def test_classify_digit_soup_consistent(text: str) -> None:
    cls = classify(text)
    e164 = normalize_e164(text)
    if cls in (C.LOCAL, C.TOLL_FREE, C.PREMIUM):
        assert e164 is not None and e164.startswith("+1") and len(e164) == 12
    if cls is C.INTERNATIONAL:
        assert e164 is not None and not e164.startswith("+1") and 8 <= len(e164) <= 16
