"""Carriers sit behind adapters; the built-in one sells from operator-supplied files.

No carrier is reachable from here. ``BuiltinCarrier`` provisions at once from the
inventory the operator loaded (``parse_inventory``), accepts CNAM updates that pass
carrier rules and port submissions; a real carrier adapter implements the same
Protocols and may answer PENDING, to be completed later.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from controlplane.numbers import cnam as cnam_rules
from controlplane.numbers.models import CnamStatus
from controlplane.numbers.vanity import TOLL_FREE_NPAS


@dataclass(frozen=True, slots=True)
class InventoryRow:
    number: str
    kind: str
    state: str | None
    city: str | None
    rate_center: str | None

    @property
    def npa(self) -> str:
        return self.number[2:5]

    @property
    def nxx(self) -> str:
        return self.number[5:8]


class InventoryError(ValueError):
    pass


def _row(number: str, state: str, city: str, rate_center: str, line: int) -> InventoryRow:
    digits = number.strip().removeprefix("+").removeprefix("1") if len(number.strip().lstrip("+")) == 11 \
        else number.strip()
    if not (len(digits) == 10 and digits.isdigit() and digits[0] in "23456789" and digits[3] in "23456789"):
        raise InventoryError(f"line {line}: {number!r} is not a NANP number")
    kind = "toll_free" if digits[:3] in TOLL_FREE_NPAS else "local"
    region = state.strip().upper() or None
    if kind == "local" and (region is None or len(region) != 2 or not region.isalpha()):
        raise InventoryError(f"line {line}: a local number needs a two-letter state")
    return InventoryRow("+1" + digits, kind, region if kind == "local" else None,
                        city.strip() or None, rate_center.strip().upper() or None)


def parse_inventory(text: str) -> Iterator[InventoryRow]:
    """CSV with a header. Either ``number,state,city,rate_center`` per number, or
    blocks ``npa,nxx[,first,last],state,city,rate_center`` (lines first..last, default all)."""
    try:
        yield from _parse_inventory(text)
    except csv.Error as exc:  # e.g. a bare carriage return inside a field: bad input, not a crash
        raise InventoryError(f"not valid CSV ({exc})") from None


def _parse_inventory(text: str) -> Iterator[InventoryRow]:
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or ())
    if not ({"number"} <= fields or {"npa", "nxx"} <= fields):
        raise InventoryError("the header needs a number column, or npa and nxx columns")
    for line, rec in enumerate(reader, start=2):
        state, city, rc = rec.get("state") or "", rec.get("city") or "", rec.get("rate_center") or ""
        if rec.get("number"):
            yield _row(rec["number"], state, city, rc, line)
            continue
        npa, nxx = (rec.get("npa") or "").strip(), (rec.get("nxx") or "").strip()
        try:
            first, last = int(rec.get("first") or 0), int(rec.get("last") or 9999)
        except ValueError:
            raise InventoryError(f"line {line}: first and last are line numbers 0-9999") from None
        if not (0 <= first <= last <= 9999):
            raise InventoryError(f"line {line}: first and last are line numbers 0-9999")
        for n in range(first, last + 1):
            yield _row(f"{npa}{nxx}{n:04d}", state, city, rc, line)


class Carrier(Protocol):
    name: str

    async def order(self, numbers: Sequence[str]) -> dict[str, str]:
        """Provision numbers: each ``ACTIVE`` or ``PENDING`` (the carrier completes later)."""

    async def release(self, number: str) -> None: ...

    async def submit_port(self, port_id: str, numbers: Sequence[str], losing_carrier: str) -> str:
        """Send a port request to the losing carrier; the carrier's reference."""

    async def cancel_port(self, reference: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CnamResult:
    status: CnamStatus
    reason: str | None = None


class CnamProvider(Protocol):
    async def update(self, number: str, cnam: str | None) -> CnamResult: ...


@dataclass
class BuiltinCarrier:
    """Sells from the operator's inventory files: everything it has is ACTIVE at once."""

    name: str = "builtin"

    async def order(self, numbers: Sequence[str]) -> dict[str, str]:
        return {n: "ACTIVE" for n in numbers}

    async def release(self, number: str) -> None:
        return None

    async def submit_port(self, port_id: str, numbers: Sequence[str], losing_carrier: str) -> str:
        return f"builtin-port-{secrets.token_hex(4)}"

    async def cancel_port(self, reference: str) -> None:
        return None


@dataclass
class BuiltinCnamProvider:
    """Applies the carrier rules a CNAM database enforces; Synced when they pass."""

    async def update(self, number: str, cnam: str | None) -> CnamResult:
        if cnam is None:
            return CnamResult(CnamStatus.SYNCED)
        try:
            cnam_rules.validate(cnam)
        except cnam_rules.CnamInvalid as exc:
            return CnamResult(CnamStatus.FAILED, str(exc))
        return CnamResult(CnamStatus.SYNCED)
