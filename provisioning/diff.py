"""Desired rows vs rows found: what to upsert and what to delete (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provisioning.pjsip import AorRow, AuthRow, EndpointRow, PjsipObjects

Row = EndpointRow | AuthRow | AorRow


@dataclass(frozen=True, slots=True)
class TableDiff:
    table: str
    upserts: tuple[Row, ...]
    deletes: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.deletes


def diff_table(table: str, desired: Sequence[Row], actual: Mapping[str, Row]) -> TableDiff:
    wanted = {row.id: row for row in desired}
    upserts = tuple(row for row_id, row in sorted(wanted.items()) if actual.get(row_id) != row)
    deletes = tuple(sorted(set(actual) - set(wanted)))
    return TableDiff(table, upserts, deletes)


def desired_by_table(objects: PjsipObjects) -> dict[str, tuple[Row, ...]]:
    return {"ps_endpoints": objects.endpoints, "ps_auths": objects.auths, "ps_aors": objects.aors}
