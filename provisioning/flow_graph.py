"""Loops in a tenant's call flows (pure): which new references would make a call go round.

A reference is an edge owner -> target. A cycle is a loop the call could run without the
caller doing anything (a time condition sending to itself through a ring group's no-answer
destination, ...). An edge taken on a caller's key press (an IVR's digit option, e.g.
"9: back to the main menu") breaks it: the caller chooses to go round, so such cycles stand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from provisioning.destinations import Destination, DestinationKind

__all__ = ["interactive", "looping_fields"]

Edge = tuple[Destination, str, Destination]


def interactive(owner: Destination, field: str) -> bool:
    """True for an edge the caller takes by pressing a key (an IVR digit option)."""
    return owner.kind is DestinationKind.IVR and field.startswith("options.")


def looping_fields(owner: Destination, targets: Mapping[str, Destination], others: Iterable[Edge]) -> list[str]:
    """The fields of ``owner``'s new ``targets`` from which the call comes back to ``owner``
    through non-interactive references only (``others``: the tenant's other references;
    ``owner``'s old ones among them are ignored)."""
    graph: dict[Destination, list[Destination]] = {}
    for src, field, dst in others:
        if src != owner and not interactive(src, field):
            graph.setdefault(src, []).append(dst)
    bad: list[str] = []
    for field, start in targets.items():
        if interactive(owner, field):
            continue
        seen: set[Destination] = set()
        stack = [start]
        while stack:
            node = stack.pop()
            if node == owner:
                bad.append(field)
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend(graph.get(node, ()))
    return bad
