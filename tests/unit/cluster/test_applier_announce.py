"""Several nodes: a dialplan change asked of one node's applier is announced (the tenants plugin
sends ``dialplan_changed``, which controlplane.cluster relays to the other nodes); a change that
came as that signal is not announced again (no echo between nodes)."""

from __future__ import annotations

from typing import Any

from controlplane.tenants.applier import Applier


def test_a_change_is_announced_once_and_a_relayed_one_not_at_all() -> None:
    pool: Any = None  # no database: only the request side of the applier is used
    told: list[int] = []
    applier = Applier(pool)
    applier.dialplan_changed()  # single-node: nobody to tell
    applier.announce = lambda: told.append(1)
    applier.dialplan_changed()
    applier.dialplan_changed(announce=False)
    assert told == [1]
