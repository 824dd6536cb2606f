"""The flows capability's lines of a tenant's ``<prefix>-flows`` context (pure).

IVR menus (``ivr-<id>``), time conditions (``tc-<id>``), external numbers (``out-<digits>``),
``hangup`` and the DIDs' entries (``did-<digits>``; ``did``: the unassigned-DID behaviour).
Every value that reaches a line is checked here against a whitelist shape, so no input can
carry a newline, comma, bracket or semicolon into the dialplan, whatever the callers did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from provisioning import names
from provisioning.destinations import Destination, DestinationKind, flows_context, goto_args, target_exten

__all__ = ["BUILTIN_PROMPTS", "DAYS", "DidEntry", "HoursRange", "IvrMenu", "OPTION_KEYS", "TenantFlows", "TimeCondition",
           "UnsafeValue", "render_tenant_flows", "safe_timezone"]

# Sounds shipped with Asterisk's core prompts that an IVR may play without an upload.
BUILTIN_PROMPTS = frozenset({
    "demo-congrats", "demo-instruct", "demo-thanks", "dir-welcome", "goodbye", "pls-hold-while-try",
    "queue-thankyou", "auth-thankyou", "if-correct-press", "vm-forwardoptions", "beep",
})
# Read() ends input on '#', so '#' cannot be an option key.
OPTION_KEYS = frozenset("0123456789*")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # %u: 1..7
# A built-in sound name or an absolute path as Asterisk sees it; never "..", "," or spaces.
_PLAYBACK = re.compile(r"/?[0-9A-Za-z_-][0-9A-Za-z/_.-]{0,200}")
_TZ = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}")
_ID = re.compile(r"[0-9a-f-]{36}")
_EXT = re.compile(r"[0-9]{2,6}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")
# The only shape of a DID's recording hook: a GosubIf into the same tenant's rec-did-<digits>.
_DID_HOOK = re.compile(r"GosubIf\(\$\{DIALPLAN_EXISTS\((?P<c>[0-9A-Za-z_-]+-flows),(?P<e>rec-did-[0-9]{7,15}),1\)\}"
                       r"\?(?P=c),(?P=e),1\)")
INVALID_SOUND = "pm-invalid-option"
MAX_EXTENSION_DIGITS = 6


class UnsafeValue(ValueError):
    """A value that does not have its whitelisted shape reached a renderer (a bug upstream)."""


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise UnsafeValue(f"{what}: unsafe value {value!r}")
    return value


def safe_timezone(name: str) -> str:
    """The IANA name as given when it has a zone name's shape, else UTC (never reaches a line raw)."""
    return name if _TZ.fullmatch(name) else "UTC"


@dataclass(frozen=True, slots=True)
class IvrMenu:
    id: str
    prompt: str  # a playback name: a built-in sound or the media store's path
    timeout_seconds: int
    max_attempts: int
    dial_by_extension: bool
    options: Mapping[str, Destination]
    timeout: Destination
    invalid: Destination
    # The tenant's own extension numbers: the only ones dial-by-extension reaches.
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HoursRange:
    days: tuple[str, ...]  # of DAYS
    start: str  # HH:MM
    end: str  # HH:MM (24:00: midnight at the end of the day), after start


@dataclass(frozen=True, slots=True)
class TimeCondition:
    id: str
    timezone: str
    hours: tuple[HoursRange, ...]
    holidays: tuple[date, ...]
    override: str  # none | open | closed
    open: Destination
    closed: Destination


@dataclass(frozen=True, slots=True)
class DidEntry:
    """A DID of the tenant and where it goes (None: the unassigned-DID behaviour)."""

    number: str
    destination: Destination | None
    # The recordings capability's hook (controlplane.voicemail.render.recording_hook), run
    # before the Goto so a DID's recording policy starts where the call enters; "" for none.
    recording_hook: str = ""


@dataclass(frozen=True, slots=True)
class TenantFlows:
    """Everything the flows capability renders for one tenant."""

    prefix: str
    ivrs: Sequence[IvrMenu] = ()
    time_conditions: Sequence[TimeCondition] = ()
    dids: Sequence[DidEntry] = ()
    unassigned: Destination | None = None
    externals: frozenset[str] = frozenset()  # E.164 numbers some flow points at
    # Extension numbers to render ext-<n> for (only while no capability owns that kind).
    extension_fallback: Sequence[str] = ()
    extras: Sequence[str] = field(default_factory=tuple)


def _goto(prefix: str, destination: Destination) -> str:
    return f"Goto({goto_args(prefix, destination)})"


def render_ivr(prefix: str, ivr: IvrMenu) -> list[str]:
    _check(_ID, ivr.id, "ivr id")
    prompt = _check(_PLAYBACK, ivr.prompt, "prompt")
    if ".." in prompt:
        raise UnsafeValue(f"prompt: unsafe value {prompt!r}")
    exten = target_exten(Destination(DestinationKind.IVR, ivr.id))
    timeout = max(1, min(int(ivr.timeout_seconds), 30))
    attempts = max(1, min(int(ivr.max_attempts), 10))
    digits = MAX_EXTENSION_DIGITS if ivr.dial_by_extension else 1
    flows = flows_context(prefix)
    lines = [
        f"exten => {exten},1,Set(CP_IVR_TRY=0)",
        " same => n,Answer()",
        " same => n(prompt),Set(CP_IVR_TRY=$[${CP_IVR_TRY} + 1])",
        # The key(s) pressed: only digits and '*' survive (a hostile '#', ',' never reaches a Goto).
        f" same => n,Read(CP_IVR_KEY,{prompt},{digits},,1,{timeout})",
        " same => n,Set(CP_IVR_KEY=${FILTER(0123456789*,${CP_IVR_KEY})})",
        ' same => n,GotoIf($["${CP_IVR_KEY}" = ""]?timeout)',
    ]
    for key in sorted(ivr.options):
        if key not in OPTION_KEYS:
            raise UnsafeValue(f"option key {key!r}")
        lines.append(f' same => n,GotoIf($["${{CP_IVR_KEY}}" = "{key}"]?{goto_args(prefix, ivr.options[key])})')
    if ivr.dial_by_extension:
        # Only this tenant's own extensions, listed here: not DIALPLAN_EXISTS, which a pattern
        # entry (ext-<anything>) would satisfy for any digits.
        own = "-".join(sorted({_check(_EXT, n, "extension") for n in ivr.extensions}))
        lines += [
            " same => n,Set(CP_IVR_EXT=${FILTER(0123456789,${CP_IVR_KEY})})",
            f" same => n,Set(CP_IVR_EXTS={own})",
            f' same => n,GotoIf($["${{CP_IVR_EXT}}" != "" & ${{FIELDNUM(CP_IVR_EXTS,-,${{CP_IVR_EXT}})}} > 0]'
            f"?{flows},ext-${{CP_IVR_EXT}},1)",
        ]
    lines += [
        f" same => n,GotoIf($[${{CP_IVR_TRY}} < {attempts}]?retry)",
        f" same => n,{_goto(prefix, ivr.invalid)}",
        f" same => n(retry),Playback({INVALID_SOUND})",
        " same => n,Goto(prompt)",
        f" same => n(timeout),GotoIf($[${{CP_IVR_TRY}} < {attempts}]?prompt)",
        f" same => n,{_goto(prefix, ivr.timeout)}",
    ]
    return lines


def _minutes(hhmm: str) -> int:
    _check(_HHMM, hhmm, "time")
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def render_time_condition(prefix: str, tc: TimeCondition) -> list[str]:
    """Evaluated per call from the clock in the tenant's zone (STRFTIME with a zone argument):
    holidays first (closed), then the weekly hours (open), else closed. An override skips both."""
    _check(_ID, tc.id, "time condition id")
    exten = target_exten(Destination(DestinationKind.TIME_CONDITION, tc.id))
    tz = safe_timezone(tc.timezone)
    head = f"exten => {exten},1"
    if tc.override == "open":
        return [f"{head},{_goto(prefix, tc.open)}"]
    if tc.override == "closed":
        return [f"{head},{_goto(prefix, tc.closed)}"]
    lines = [
        f"{head},Set(CP_TC_NOW=${{EPOCH}})",
        f" same => n,Set(CP_TC_DAY=${{STRFTIME(${{CP_TC_NOW}},{tz},%Y%m%d)}})",
        f" same => n,Set(CP_TC_DOW=${{STRFTIME(${{CP_TC_NOW}},{tz},%u)}})",
        # minutes since midnight: %H*60+%M without leading zeros mattering to $[...]
        f" same => n,Set(CP_TC_MIN=$[${{STRFTIME(${{CP_TC_NOW}},{tz},%H)}} * 60 + "
        f"${{STRFTIME(${{CP_TC_NOW}},{tz},%M)}}])",
    ]
    for day in sorted(set(tc.holidays)):
        lines.append(f' same => n,GotoIf($["${{CP_TC_DAY}}" = "{day:%Y%m%d}"]?closed)')
    for r in tc.hours:
        start, end = _minutes(r.start), _minutes(r.end)
        for d in sorted({DAYS.index(day) + 1 for day in r.days}):
            lines.append(f" same => n,GotoIf($[${{CP_TC_DOW}} = {d} & ${{CP_TC_MIN}} >= {start}"
                         f" & ${{CP_TC_MIN}} < {end}]?open)")
    lines += [
        " same => n(closed),NoOp(closed)",
        f" same => n,{_goto(prefix, tc.closed)}",
        f" same => n(open),{_goto(prefix, tc.open)}",
    ]
    return lines


def _external(prefix: str, number: str) -> list[str]:
    exten = target_exten(Destination(DestinationKind.EXTERNAL, number))  # validates the E.164 shape
    # The tenant's own outbound path: the dialled-number guard, caller id and admission of a call.
    return [f"exten => {exten},1,Goto({names.dial_context(prefix)},{number},1)"]


def render_tenant_flows(flows: TenantFlows) -> list[str]:
    """The flows capability's lines for one tenant (no context header)."""
    p = flows.prefix
    lines: list[str] = []
    for ivr in sorted(flows.ivrs, key=lambda i: i.id):
        lines += render_ivr(p, ivr)
    for tc in sorted(flows.time_conditions, key=lambda t: t.id):
        lines += render_time_condition(p, tc)
    for number in sorted(flows.externals):
        lines += _external(p, number)
    lines.append("exten => hangup,1,Hangup()")
    unassigned = (_goto(p, flows.unassigned) if flows.unassigned is not None
                  else f"Goto({names.NOT_CONFIGURED},s,1)")
    lines.append(f"exten => {target_exten(Destination(DestinationKind.DID))},1,{unassigned}")
    for did in sorted(flows.dids, key=lambda d: d.number):
        exten = target_exten(Destination(DestinationKind.DID, did.number))
        goto = _goto(p, did.destination) if did.destination is not None else _goto(p, Destination(DestinationKind.DID))
        if did.recording_hook:
            hook = _DID_HOOK.fullmatch(did.recording_hook)
            if hook is None or hook["c"] != flows_context(p) or hook["e"] != f"rec-{exten}":
                raise UnsafeValue(f"recording hook: unsafe value {did.recording_hook!r}")
            lines += [f"exten => {exten},1,{did.recording_hook}", f" same => n,{goto}"]
        else:
            lines.append(f"exten => {exten},1,{goto}")
    for number in sorted(flows.extension_fallback):
        exten = target_exten(Destination(DestinationKind.EXTENSION, number))
        lines.append(f"exten => {exten},1,Goto({names.internal_context(p)},{number},1)")
    return lines


def referenced_externals(destinations: Iterable[Destination]) -> frozenset[str]:
    return frozenset(d.ref for d in destinations if d.kind is DestinationKind.EXTERNAL)
