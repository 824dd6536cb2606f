"""Checks of the company, brand and notification settings a partner submits. Pure.

Each ``check_*`` takes the decoded JSON object and returns the patch it describes plus
every field at fault, so one request learns of all its faults and nothing is written
when there is one. A field absent from the object is left as it is; ``null`` puts it
back to its default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from controlplane.shared.problems import FieldError

MAX_EMAIL = 254
MAX_COMPANY_NAME = 200
MAX_BRAND_NAME = 100
DESCRIPTOR_MIN, DESCRIPTOR_MAX = 5, 22
COMPANY_FIELDS: Final = ("company_name", "billing_email")
BRAND_FIELDS: Final = ("brand_name", "primary_color", "from_email", "support_email", "statement_descriptor")
NOTIFICATION_FIELDS: Final = ("new_tenant_signups", "usage_alerts", "monthly_reports", "system_updates")

# A pragmatic address check (RFC 5321 sizes, one @, a dotted domain of LDH labels): the relay
# is the judge of deliverability; this refuses what cannot be an address or would break a header.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_COLOR = re.compile(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")
_DESCRIPTOR = re.compile(r"^[A-Za-z0-9 &-]+$")


@dataclass(frozen=True)
class Patch:
    """Fields to set (``None``: back to the default); absent fields are not in ``values``."""

    values: dict[str, object] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)


def email_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an email address; None when it is acceptable."""
    if len(value) > MAX_EMAIL:
        return f"at most {MAX_EMAIL} characters"
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return "an email address such as billing@example.com"
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return "the part before @ has characters an address cannot have"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return "the domain must be a name such as example.com"
    return None


def normalize_color(value: str) -> str | None:
    """``#RRGGBB`` (or the CSS shorthand ``#RGB``) as lowercase ``#rrggbb``; None when not one."""
    if not _COLOR.match(value):
        return None
    digits = value[1:].lower()
    return "#" + (digits if len(digits) == 6 else "".join(c * 2 for c in digits))


def descriptor_problem(value: str) -> str | None:
    """Stripe's statement descriptor rules (5-22 characters, one letter at least) within the
    seed's alphabet (letters, digits, spaces, ``-`` and ``&``)."""
    if not DESCRIPTOR_MIN <= len(value) <= DESCRIPTOR_MAX:
        return f"{DESCRIPTOR_MIN} to {DESCRIPTOR_MAX} characters (this one has {len(value)})"
    if not _DESCRIPTOR.match(value):
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in " &-"))})
        return f"only letters, digits, spaces, '-' and '&' (not {' '.join(repr(c) for c in bad)})"
    if not any(c.isalpha() for c in value):
        return "at least one letter"
    if value != value.strip():
        return "no leading or trailing spaces"
    return None


def _unknown(document: Mapping[str, object], known: tuple[str, ...]) -> list[FieldError]:
    return [FieldError(name, f"{name}: unknown field; one of {', '.join(known)}")
            for name in sorted(set(document) - set(known))]


def _text(document: Mapping[str, object], name: str, patch: Patch, *, max_len: int) -> str | None:
    """The field as trimmed text when present and a string; an error recorded otherwise."""
    value = document[name]
    if not isinstance(value, str):
        patch.errors.append(FieldError(name, f"{name}: a string or null"))
        return None
    text = value.strip()
    if not text:
        patch.errors.append(FieldError(name, f"{name}: must not be blank (null resets it)"))
        return None
    if len(text) > max_len:
        patch.errors.append(FieldError(name, f"{name}: at most {max_len} characters"))
        return None
    return text


def _email(document: Mapping[str, object], name: str, patch: Patch) -> None:
    if name not in document:
        return
    if document[name] is None:
        patch.values[name] = None
        return
    text = _text(document, name, patch, max_len=MAX_EMAIL)
    if text is None:
        return
    problem = email_problem(text)
    if problem is not None:
        patch.errors.append(FieldError(name, f"{name}: {problem}"))
    else:
        patch.values[name] = text


def _name(document: Mapping[str, object], name: str, patch: Patch, max_len: int) -> None:
    if name not in document:
        return
    if document[name] is None:
        patch.values[name] = None
        return
    text = _text(document, name, patch, max_len=max_len)
    if text is not None:
        patch.values[name] = text


def check_company(document: Mapping[str, object]) -> Patch:
    patch = Patch(errors=_unknown(document, COMPANY_FIELDS))
    _name(document, "company_name", patch, MAX_COMPANY_NAME)
    _email(document, "billing_email", patch)
    return patch


def check_brand(document: Mapping[str, object]) -> Patch:
    patch = Patch(errors=_unknown(document, BRAND_FIELDS))
    _name(document, "brand_name", patch, MAX_BRAND_NAME)
    _email(document, "from_email", patch)
    _email(document, "support_email", patch)
    if "primary_color" in document:
        value = document["primary_color"]
        color = normalize_color(value) if isinstance(value, str) else None
        if value is None:
            patch.values["primary_color"] = None
        elif color is None:
            patch.errors.append(FieldError("primary_color", "primary_color: a hex color, #RRGGBB (or #RGB)"))
        else:
            patch.values["primary_color"] = color
    if "statement_descriptor" in document:
        value = document["statement_descriptor"]
        if value is None:
            patch.values["statement_descriptor"] = None
        elif not isinstance(value, str):
            patch.errors.append(FieldError("statement_descriptor", "statement_descriptor: a string or null"))
        else:
            problem = descriptor_problem(value)
            if problem is None:
                patch.values["statement_descriptor"] = value
            else:
                patch.errors.append(FieldError("statement_descriptor", f"statement_descriptor: {problem}"))
    return patch


def check_notifications(document: Mapping[str, object]) -> Patch:
    patch = Patch(errors=_unknown(document, NOTIFICATION_FIELDS))
    for name in NOTIFICATION_FIELDS:
        if name not in document:
            continue
        value = document[name]
        if isinstance(value, bool):
            patch.values[name] = value
        else:
            patch.errors.append(FieldError(name, f"{name}: true or false"))
    return patch
