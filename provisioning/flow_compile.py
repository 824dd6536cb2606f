"""A tenant's flows context as numbered priorities, and the difference between two of them (pure).

The flows context is applied to a running Asterisk with AMI ``DialplanExtensionAdd``/``Remove``
(docs/flows.md), which take numeric priorities and no labels. The sections render ordinary
dialplan lines (``exten => x,1,...``, `` same => n(label),...``); here they are numbered, and
the label targets of ``Goto``/``GotoIf``/``GotoIfTime``/``Gosub``/``GosubIf`` inside the same
context are replaced by their numbers, so the AMI form runs the same as the file form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Compiled", "FlowChange", "Priority", "compile_context", "diff", "render_file"]

_EXTEN = re.compile(r"exten\s*=>\s*([^,]+),(\d+|n)(?:\(([A-Za-z0-9_-]+)\))?,(.*)")
_SAME = re.compile(r"same\s*=>\s*(\d+|n)(?:\(([A-Za-z0-9_-]+)\))?,(.*)")
_APP = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?")
# Dialplan expressions use $[...]: brackets are fine here; a newline or ";" never is (AMI, file).
_FORBIDDEN = re.compile(r"[\n\r;]")
_GOTO = frozenset({"goto", "gosub"})
_BRANCHING = frozenset({"gotoif", "gosubif", "gotoiftime"})


class BadLine(ValueError):
    """A section rendered a line that is not an ``exten``/``same`` line of the accepted shape."""


@dataclass(frozen=True, slots=True)
class Priority:
    exten: str
    number: int
    label: str | None
    app: str
    data: str


Compiled = dict[tuple[str, int], Priority]


def _parse(lines: Iterable[str]) -> list[Priority]:
    out: list[Priority] = []
    exten: str | None = None
    last = 0
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(";"):  # blank or a whole-line comment: nothing to apply
            continue
        if _FORBIDDEN.search(raw.rstrip("\n")):
            raise BadLine(f"forbidden character in {line!r}")
        m = _EXTEN.fullmatch(line)
        if m:
            exten, prio, label, rest = m.group(1).strip(), m.group(2), m.group(3), m.group(4)
        else:
            s = _SAME.fullmatch(line)
            if not s or exten is None:
                raise BadLine(f"not a dialplan line: {line!r}")
            prio, label, rest = s.group(1), s.group(2), s.group(3)
        number = last + 1 if prio == "n" else int(prio)
        if m is None and prio != "n" and number <= last:
            raise BadLine(f"priority goes backwards: {line!r}")
        app = _APP.fullmatch(rest.strip())
        if not app:
            raise BadLine(f"not an application call: {line!r}")
        out.append(Priority(exten, number, label, app.group(1), app.group(2) or ""))
        last = number
    return out


def _resolve_target(target: str, context: str, exten: str, labels: Mapping[tuple[str, str], int]) -> str:
    parts = target.split(",")
    if len(parts) == 1:
        key = (exten, parts[0].strip())
    elif len(parts) == 2:
        key = (parts[0].strip(), parts[1].strip())
    elif len(parts) == 3 and parts[0].strip() == context:
        key = (parts[1].strip(), parts[2].strip())
    else:
        return target
    number = labels.get(key)
    if number is None:
        return target
    return ",".join([*parts[:-1], str(number)])


def _resolve(p: Priority, context: str, labels: Mapping[tuple[str, str], int]) -> str:
    kind = p.app.lower()
    if kind in _GOTO:
        target, paren, args = p.data.partition("(")
        return _resolve_target(target, context, p.exten, labels) + paren + args
    if kind in _BRANCHING and "?" in p.data:
        condition, branches = p.data.rsplit("?", 1)
        resolved = [_resolve_target(b, context, p.exten, labels) if b else b for b in branches.split(":")]
        return condition + "?" + ":".join(resolved)
    return p.data


def compile_context(context: str, lines: Sequence[str]) -> Compiled:
    """Numbered priorities with same-context labels resolved, keyed by (exten, number)."""
    parsed = _parse(lines)
    labels = {(p.exten, p.label): p.number for p in parsed if p.label}
    compiled: Compiled = {}
    for p in parsed:
        key = (p.exten, p.number)
        if key in compiled:
            raise BadLine(f"{p.exten} priority {p.number} rendered twice")
        compiled[key] = Priority(p.exten, p.number, p.label, p.app, _resolve(p, context, labels))
    return compiled


def render_file(context: str, compiled: Compiled, header: str = "") -> str:
    """The context as a file Asterisk loads at a full reload (the same priorities as AMI's)."""
    out = [f"; {header}\n" if header else "", f"[{context}]\n"]
    for (exten, number), p in sorted(compiled.items()):
        out.append(f"exten => {exten},{number},{p.app}({p.data})\n")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class FlowChange:
    """AMI actions that turn one compiled context into another, in order."""

    add: tuple[Priority, ...]  # DialplanExtensionAdd with Replace: yes
    remove_priorities: tuple[tuple[str, int], ...]
    remove_extens: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove_priorities or self.remove_extens)


def diff(old: Compiled, new: Compiled) -> FlowChange:
    """Adds first (replacing in place: a call inside a changed extension goes on), then the
    priorities beyond an extension's new end, then the extensions that are gone."""
    add = tuple(p for key, p in sorted(new.items())
                if key not in old or (old[key].app, old[key].data) != (p.app, p.data))
    new_extens = {e for e, _ in new}
    gone = tuple(sorted({e for e, _ in old} - new_extens))
    trimmed = tuple(sorted(k for k in old if k not in new and k[0] in new_extens))
    return FlowChange(add, trimmed, gone)
