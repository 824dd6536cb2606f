"""Destination classification of a dialed number.

Pure and total: any input (letters, empty, 200 digits, non-ASCII digits,
non-strings) yields a class; nothing here raises on what a caller dialed.
The class decides which price column applies (seed 003: local and
toll-free are metered and rated separately), and INVALID is never rated.

Which strings are PSTN numbers at all, and which E.164 number each one is, is
the dialled-number rule of ``cdr_ingest.dialing`` (the dialplan renders the same
rule): 10-digit and 1+10 national dialling, 011 international prefix, and E.164
with a leading +. Seven-digit local dialling is INVALID: without an area code we
cannot tell which number was meant.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from cdr_ingest.dialing import destination

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

_MAX_RAW_LEN = 64  # longer than any real dial string
_EXT_MIN, _EXT_MAX = 2, 6


def _clean(dialed: object) -> str | None:
    """The string itself when it is '+'? followed by ASCII digits, else None.

    Nothing is stripped: the dialplan never strips either (cdr_ingest.dialing), so a
    string with separators, letters or '*' is not a number here any more than there.
    """
    if not isinstance(dialed, str) or len(dialed) > _MAX_RAW_LEN:
        return None
    body = dialed[1:] if dialed.startswith("+") else dialed
    # str.isdigit() accepts non-ASCII digits (e.g. Arabic-Indic); we must not.
    if not body or not body.isascii() or not body.isdigit():
        return None
    return dialed


def normalize_e164(dialed: object) -> str | None:
    """E.164 form ('+14155550123') of a dialled PSTN number, or None.

    Exactly the number the carrier trunk would receive (``cdr_ingest.dialing``, the
    one owner of that rule): None for extensions, emergency short codes, feature
    codes and anything the dialplan refuses.
    """
    return destination(dialed)


def rating_digits(dialed: str) -> str | None:
    """Digits a rate deck is keyed on (E.164 without '+'), or None."""
    e164 = normalize_e164(dialed)
    return None if e164 is None else e164[1:]


def classify(dialed: object, *, callee_is_extension: bool | None = None) -> CallClass:
    """Class of a dialed number; never raises.

    callee_is_extension: True when the router already knows the callee is
    an extension of the caller's tenant; False when it knows it is not;
    None to decide by shape (2-6 digits, no '+', is an extension).
    Emergency codes win over everything, including the extension flag,
    so a tenant with an extension "911" can never shadow 911.
    """
    if type(dialed) is str and len(dialed) <= _MAX_RAW_LEN:
        return _classify_text(dialed, callee_is_extension)
    return _classify(dialed, callee_is_extension)


@lru_cache(maxsize=8192)
def _classify_text(dialed: str, callee_is_extension: bool | None) -> CallClass:
    # A call's number is classified several times (admission, rating, its record): once here.
    # Bounded: only strings a number can be, and the least recently used are dropped.
    return _classify(dialed, callee_is_extension)


def _classify(dialed: object, callee_is_extension: bool | None) -> CallClass:
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
