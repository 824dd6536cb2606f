"""Bodies and records of the flows API, and their checks (pure: every field at fault is named)."""

from __future__ import annotations

import re
from datetime import date, datetime

import msgspec

from provisioning.destinations import Destination, DestinationKind, InvalidDestination
from provisioning.flows import BUILTIN_PROMPTS, DAYS, OPTION_KEYS

_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")
_MEDIA_NAME = re.compile(r"[0-9a-z][0-9a-z-]{0,62}")


class DestinationBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: str
    ref: str = ""


class Prompt(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: str = "builtin"  # builtin | upload (a file stored through POST .../prompts/{name})
    ref: str = "demo-congrats"


class IvrBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    prompt: Prompt = msgspec.field(default_factory=Prompt)
    timeout_seconds: int = 5
    max_attempts: int = 3
    dial_by_extension: bool = False
    options: dict[str, DestinationBody] = msgspec.field(default_factory=dict)
    timeout_destination: DestinationBody = msgspec.field(default_factory=lambda: DestinationBody(kind="hangup"))
    invalid_destination: DestinationBody = msgspec.field(default_factory=lambda: DestinationBody(kind="hangup"))


class Ivr(IvrBody, kw_only=True):
    id: str
    tenant_id: str
    created_at: datetime
    updated_at: datetime


class HoursBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    days: list[str]
    start: str
    end: str


class TimeConditionBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    hours: list[HoursBody] = msgspec.field(default_factory=list)
    holidays: list[str] = msgspec.field(default_factory=list)
    override: str = "none"
    open_destination: DestinationBody
    closed_destination: DestinationBody


class TimeCondition(TimeConditionBody, kw_only=True):
    id: str
    tenant_id: str
    timezone: str
    created_at: datetime
    updated_at: datetime


class RouteBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    destination: DestinationBody | None = None


class SettingsBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    unassigned_destination: DestinationBody | None = None


class DidRoute(msgspec.Struct, kw_only=True):
    did_id: str
    number: str
    destination: DestinationBody | None


class FlowSettings(msgspec.Struct, kw_only=True):
    tenant_id: str
    unassigned_destination: DestinationBody | None


def destination(body: DestinationBody, field: str, errors: dict[str, str]) -> Destination | None:
    try:
        kind = DestinationKind(body.kind)
    except ValueError:
        errors[f"{field}.kind"] = "unknown destination kind"
        return None
    if kind is DestinationKind.DID:
        errors[f"{field}.kind"] = "a DID is not a destination"
        return None
    try:
        return Destination(kind, body.ref)
    except InvalidDestination as exc:
        errors[f"{field}.ref"] = str(exc)
        return None


def _name(value: str, errors: dict[str, str]) -> None:
    if not value.strip() or len(value) > 80 or any(ord(c) < 32 for c in value):
        errors["name"] = "1-80 printable characters"


def check_ivr(body: IvrBody) -> tuple[dict[str, Destination], dict[str, str]]:
    """The destination fields (field -> destination) and the errors of every other field."""
    errors: dict[str, str] = {}
    _name(body.name, errors)
    if body.prompt.kind == "builtin":
        if body.prompt.ref not in BUILTIN_PROMPTS:
            errors["prompt.ref"] = "not a built-in prompt: " + ", ".join(sorted(BUILTIN_PROMPTS))
    elif body.prompt.kind == "upload":
        if not _MEDIA_NAME.fullmatch(body.prompt.ref):
            errors["prompt.ref"] = "an uploaded prompt's name: [0-9a-z-], up to 63"
    else:
        errors["prompt.kind"] = "builtin or upload"
    if not 1 <= body.timeout_seconds <= 30:
        errors["timeout_seconds"] = "1-30"
    if not 1 <= body.max_attempts <= 10:
        errors["max_attempts"] = "1-10"
    targets: dict[str, Destination] = {}
    for key, dest in body.options.items():
        if key not in OPTION_KEYS:
            errors[f"options.{key}"] = "an option key is one of 0-9 or *"
            continue
        d = destination(dest, f"options.{key}", errors)
        if d is not None:
            targets[f"options.{key}"] = d
    for f in ("timeout_destination", "invalid_destination"):
        d = destination(getattr(body, f), f, errors)
        if d is not None:
            targets[f] = d
    return targets, errors


def check_time_condition(body: TimeConditionBody) -> tuple[dict[str, Destination], dict[str, str]]:
    errors: dict[str, str] = {}
    _name(body.name, errors)
    for i, h in enumerate(body.hours):
        bad_days = [d for d in h.days if d not in DAYS]
        if not h.days or bad_days:
            errors[f"hours.{i}.days"] = "one or more of " + ", ".join(DAYS)
        ok = True
        for f in ("start", "end"):
            if not _HHMM.fullmatch(getattr(h, f)):
                errors[f"hours.{i}.{f}"] = "HH:MM (00:00-23:59, or 24:00 for an end)"
                ok = False
        if ok and h.start == "24:00":
            errors[f"hours.{i}.start"] = "a range starts before 24:00"
        elif ok and h.end <= h.start:
            errors[f"hours.{i}.end"] = "after start"
    for i, day in enumerate(body.holidays):
        try:
            date.fromisoformat(day)
            if len(day) != 10:
                raise ValueError(day)
        except ValueError:
            errors[f"holidays.{i}"] = "a date YYYY-MM-DD"
    if body.override not in ("none", "open", "closed"):
        errors["override"] = "none, open or closed"
    targets: dict[str, Destination] = {}
    for f in ("open_destination", "closed_destination"):
        d = destination(getattr(body, f), f, errors)
        if d is not None:
            targets[f] = d
    return targets, errors
