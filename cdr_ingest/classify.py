"""Destination classification of a dialed number.

Pure and total: any input (letters, empty, 200 digits, non-ASCII digits,
non-strings) yields a class; nothing here raises on what a caller dialed.
The class decides which price column applies (seed 003: local and
toll-free are metered and rated separately), and INVALID is never rated.

Dialing plan is North American (default country 1): 10-digit and 1+10
national dialing, 011 international prefix, and E.164 with a leading +.
Seven-digit local dialing is INVALID here: without an area code we cannot
tell which number was meant, so the dialplan must expand it first.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CallClass",
    "Direction",
    "classify",
    "normalize_e164",
    "rating_digits",
    "TOLL_FREE_NPAS",
    "PREMIUM_NPAS",
    "PREMIUM_EXCHANGE",
    "EMERGENCY_CODES",
]


class CallClass(StrEnum):
    INTERNAL = "internal"
    LOCAL = "local"
    TOLL_FREE = "toll_free"
    PREMIUM = "premium"
    EMERGENCY = "emergency"
    INTERNATIONAL = "international"
    INVALID = "invalid"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


TOLL_FREE_NPAS: frozenset[str] = frozenset({"800", "833", "844", "855", "866", "877", "888"})
# 900 is the premium NPA; 976 is the historical premium exchange (NPA-976-XXXX).
# NPA 976 is not assigned anywhere, listing it costs nothing and errs safe.
PREMIUM_NPAS: frozenset[str] = frozenset({"900", "976"})
PREMIUM_EXCHANGE = "976"
# 9911 / 9933: a user dialing the outside-line prefix 9 before 911 / 933
# must still reach emergency services (Kari's Law, seed 003 Appendix C).
EMERGENCY_CODES: frozenset[str] = frozenset({"911", "933", "9911", "9933"})

_N = frozenset("23456789")
# Formatting people paste from contact cards; stripped before anything else.
_SEPARATORS = str.maketrans("", "", " \t-.()")
_MAX_RAW_LEN = 64  # longer than any real dial string with formatting
_E164_MAX_DIGITS = 15
_INTL_MIN_DIGITS = 7  # e.g. +290 XXXX (Saint Helena) is 7 digits with its country code
_EXT_MIN, _EXT_MAX = 2, 6


def _clean(dialed: object) -> str | None:
    """Strip formatting; None unless the rest is '+'? followed by ASCII digits."""
    if not isinstance(dialed, str) or len(dialed) > _MAX_RAW_LEN:
        return None
    s = dialed.strip().translate(_SEPARATORS)
    body = s[1:] if s.startswith("+") else s
    # str.isdigit() accepts non-ASCII digits (e.g. Arabic-Indic); we must not.
    if not body or not body.isascii() or not body.isdigit():
        return None
    return s


def _valid_nanp(ten: str) -> bool:
    """NPA and NXX both start 2-9 and neither is an N11 service code."""
    return (
        len(ten) == 10
        and ten[0] in _N
        and ten[3] in _N
        and ten[1:3] != "11"
        and ten[4:6] != "11"
    )


def _check_country(default_country: str) -> None:
    if not (
        isinstance(default_country, str)
        and 1 <= len(default_country) <= 3
        and default_country.isascii()
        and default_country.isdigit()
        and default_country[0] != "0"
    ):
        raise ValueError(f"default_country must be a 1-3 digit country code, got {default_country!r}")


def _validate_e164_digits(digits: str) -> str | None:
    if not digits or digits[0] == "0":
        return None
    if digits[0] == "1":
        return "+" + digits if len(digits) == 11 and _valid_nanp(digits[1:]) else None
    if not _INTL_MIN_DIGITS <= len(digits) <= _E164_MAX_DIGITS:
        return None
    return "+" + digits


def normalize_e164(dialed: str, default_country: str = "1") -> str | None:
    """E.164 form ('+14155550123') of a dialed PSTN number, or None.

    None for anything that is not a routable PSTN number: extensions,
    emergency short codes, feature codes, malformed input. For
    default_country "1" national forms are 10 digits or 1+10 digits and
    011 is the international prefix; for other countries only the ITU
    forms 00<cc>... and 0<national> (trunk prefix) are understood.
    A bad default_country is a programming error and raises ValueError.
    """
    _check_country(default_country)
    s = _clean(dialed)
    if s is None:
        return None
    if s.startswith("+"):
        return _validate_e164_digits(s[1:])
    if default_country == "1":
        if s.startswith("011"):
            return _validate_e164_digits(s[3:])
        if len(s) == 10:
            return _validate_e164_digits("1" + s)
        if len(s) == 11 and s[0] == "1":
            return _validate_e164_digits(s)
        return None
    if s.startswith("00"):
        return _validate_e164_digits(s[2:])
    if s.startswith("0") and len(s) > 1:
        return _validate_e164_digits(default_country + s[1:])
    return None


def rating_digits(dialed: str, default_country: str = "1") -> str | None:
    """Digits a rate deck is keyed on (E.164 without '+'), or None."""
    e164 = normalize_e164(dialed, default_country)
    return None if e164 is None else e164[1:]


def classify(dialed: object, *, callee_is_extension: bool | None = None) -> CallClass:
    """Class of a dialed number; never raises.

    callee_is_extension: True when the router already knows the callee is
    an extension of the caller's tenant; False when it knows it is not;
    None to decide by shape (2-6 digits, no '+', is an extension).
    Emergency codes win over everything, including the extension flag,
    so a tenant with an extension "911" can never shadow 911.
    """
    s = _clean(dialed)
    if s is None:
        return CallClass.INVALID
    if s in EMERGENCY_CODES:
        return CallClass.EMERGENCY
    if callee_is_extension:
        return CallClass.INTERNAL
    if callee_is_extension is None and not s.startswith("+") and _EXT_MIN <= len(s) <= _EXT_MAX:
        return CallClass.INTERNAL
    e164 = normalize_e164(s)
    if e164 is None:
        return CallClass.INVALID
    if not e164.startswith("+1"):
        return CallClass.INTERNATIONAL
    npa, nxx = e164[2:5], e164[5:8]
    if npa in TOLL_FREE_NPAS:
        return CallClass.TOLL_FREE
    if npa in PREMIUM_NPAS or nxx == PREMIUM_EXCHANGE:
        return CallClass.PREMIUM
    return CallClass.LOCAL
