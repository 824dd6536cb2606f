"""Whitelists for every text that can reach Asterisk (or its config files).

A whitelist, not a blacklist: config and dialplan syntax have many special
characters (``[ ] ; , ( ) $ { } " \\n``), so only a small known-safe alphabet
is accepted. Each check returns the cleaned value or raises ``Invalid`` naming
the field; the RPC turns that into a 422.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from provisioning.names import EMERGENCY_NUMBERS, NUMBER_PATTERN, PREFIX_PATTERN


class Invalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_PREFIX = re.compile(PREFIX_PATTERN)
_EXTENSION = re.compile(NUMBER_PATTERN)
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# Names: letters, digits, space and . & ( ) / + _ - ; no quotes, commas, brackets,
# semicolons, dollars or control characters. Starts and ends with a letter or digit.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .&()/+_-]*[A-Za-z0-9.)])?")
_CNAM = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .&_-]*[A-Za-z0-9.])?")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}")
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}")


def _full(pattern: re.Pattern[str], value: object, field: str, what: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    if len(value) > max_len:
        raise Invalid(field, f"at most {max_len} characters")
    if not pattern.fullmatch(value):
        raise Invalid(field, what)
    return value


def sip_prefix(value: object, field: str = "sip_prefix") -> str:
    return _full(_PREFIX, value, field, "3-12 lowercase letters and digits", 12)


def extension_number(value: object, field: str = "number") -> str:
    number = _full(_EXTENSION, value, field, "2-6 digits", 6)
    if number in EMERGENCY_NUMBERS:
        raise Invalid(field, f"{number} is reserved for emergency calls")
    return number


def e164(value: object, field: str = "number") -> str:
    return _full(_E164, value, field, "an E.164 number: + then 7-15 digits, no leading 0", 16)


def name(value: object, field: str = "name", max_len: int = 100) -> str:
    return _full(_NAME, value, field,
                 "letters, digits, spaces and . & ( ) / + _ - only; start with a letter or digit", max_len)


def display_name(value: object, field: str = "display_name") -> str:
    return name(value, field, 40)


def cnam(value: object, field: str = "default_cnam") -> str:
    return _full(_CNAM, value, field, "letters, digits, spaces and . & _ - only (max 15)", 15)


def email(value: object, field: str = "billing_email") -> str:
    return _full(_EMAIL, value, field, "an e-mail address", 254)


def timezone(value: object, field: str = "timezone") -> str:
    tz = _full(_TIMEZONE, value, field, "an IANA time zone such as America/Chicago", 64)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(field, f"{tz} is not an IANA time zone") from None
    return tz


def suggest_prefix(tenant_name: str) -> str:
    """A prefix from the tenant's name: its letters and digits, lowercased, 3-12 long."""
    base = re.sub(r"[^a-z0-9]", "", tenant_name.lower())[:12]
    return (base + "000")[: max(3, len(base))]
