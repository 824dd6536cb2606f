"""Registration with a 911 provider: the adapter interface and the built-in adapter.

No 911 provider is reachable from here, so the built-in adapter decides from the
address alone (the same validation the RPC runs) and answers at once. A real
provider answers PENDING and later REGISTERED/FAILED; the interface allows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from e911.address import Address, AddressInvalid, validate


class E911Status(StrEnum):
    NOT_SET = "NOT_SET"
    PENDING = "PENDING"
    REGISTERED = "REGISTERED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Registration:
    status: E911Status
    reason: str | None = None
    reference: str | None = None


class E911Provider(Protocol):
    async def register(self, number: str, address: Address) -> Registration: ...

    async def unregister(self, number: str) -> None: ...


@dataclass
class BuiltinE911Provider:
    """Registers any address that validates; records what it holds (for tests and demos)."""

    registered: dict[str, Address] | None = None

    async def register(self, number: str, address: Address) -> Registration:
        try:
            clean = validate(address)
        except AddressInvalid as exc:
            return Registration(E911Status.FAILED, str(exc))
        if self.registered is None:
            self.registered = {}
        self.registered[number] = clean
        return Registration(E911Status.REGISTERED, reference=f"builtin:{number}")

    async def unregister(self, number: str) -> None:
        if self.registered is not None:
            self.registered.pop(number, None)
