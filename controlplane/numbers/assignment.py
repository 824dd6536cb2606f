"""DID assignment: the one path by which a number reaches a tenant, moves, or leaves it
(and ``grant``, the operator's way a number enters a partner's inventory without a purchase).

Every route that changes a DID's tenant or extension comes here: ``POST
/v1/numbers/{id}/assign`` and ``/release``, ``PUT /v1/numbers/{id}/route``, ``POST
/v1/numbers/bulk``, a completed port, and the deprecated alias ``PATCH /v1/dids/{id}``
(docs/numbers.md). So there is one lock order (the DID row, then the tenant row, then
the tenant's limits row), one cap check (``limits.caps.check_did``: the tenant's
``max_dids``, its threshold alert, the ``usage_limit`` 409), and one event and one audit
entry written in the change's own transaction.

A refusal at the cap rolls the transaction back; ``guarded`` then hands it to the
limits capability (``usage.cap_reached`` once per cycle, auto-suspension when the
tenant has it on), whichever route tripped it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from controlplane import audit
from controlplane.events import emit
from controlplane.shared.problems import Problem
from controlplane.limits import caps
from controlplane.limits.caps import CapTripped
from controlplane.numbers import inventory_store, numbers_store
from controlplane.numbers.inventory_store import Conn
from controlplane.numbers.models import PhoneNumber

T = TypeVar("T")
# (partner id, the refusal) -> the limits capability reacts (event, auto-suspension).
CapHook = Callable[[str, CapTripped], Awaitable[None]]


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()  # a field the change leaves as it is


async def guarded(hook: CapHook | None, partner_id: str, work: Awaitable[T]) -> T:
    """``work`` (one transaction); a cap it tripped is reported after the rollback."""
    try:
        return await work
    except CapTripped as tripped:
        if hook is not None:
            await hook(partner_id, tripped)
        raise


async def admit(conn: Conn, partner_id: str, tenant_id: str, wanted: int = 1, *, announce: bool = True) -> None:
    """The tenant may take ``wanted`` more numbers; locks it (cancellation waits for us)."""
    status = await numbers_store.lock_tenant(conn, partner_id, tenant_id)
    if status is None:
        raise Problem(422, f"tenant_id: no tenant {tenant_id} for this partner", field="tenant_id")
    if status == "CANCELLED":
        raise Problem(409, "a cancelled tenant cannot receive numbers", field="tenant_id", code="tenant_cancelled")
    await caps.check_did(conn, tenant_id, wanted, announce=announce)


async def check_extension(conn: Conn, tenant_id: str, extension_id: str | None) -> None:
    if extension_id is not None and not await numbers_store.extension_exists(conn, tenant_id, extension_id):
        raise Problem(422, f"extension_id: no extension {extension_id} in tenant {tenant_id}",
                      field="extension_id")


def event_type(before: PhoneNumber, tenant_id: str | None) -> str:
    if tenant_id is not None and tenant_id != before.tenant_id:
        return "phone_number.assigned"
    if before.tenant_id is not None and tenant_id is None:
        return "phone_number.released"
    return "phone_number.updated"


async def change(conn: Conn, partner_id: str, before: PhoneNumber, tenant_id: str | None,
                 extension_id: str | None, *, cnam: str | None | _Keep = KEEP, **extra: Any) -> PhoneNumber:
    """Give ``before`` (read under its row lock) this tenant and extension (None, None: release).

    Call inside the caller's transaction; ``extra`` goes into the event's data."""
    if tenant_id is None:
        if extension_id is not None:
            raise Problem(422, "extension_id: an unassigned number cannot route to an extension",
                          field="extension_id")
    else:
        if tenant_id != before.tenant_id:
            await admit(conn, partner_id, tenant_id)
        await check_extension(conn, tenant_id, extension_id)
    if tenant_id != before.tenant_id or extension_id != before.extension_id:
        await numbers_store.assign(conn, before.id, tenant_id, extension_id)
    if not isinstance(cnam, _Keep):
        await numbers_store.set_cnam_text(conn, before.id, cnam)
    after = await numbers_store.get(conn, partner_id, before.id)
    assert after is not None  # locked by the caller
    kind = event_type(before, tenant_id)
    owner = tenant_id or before.tenant_id
    await emit(conn, kind, partner_id=partner_id, tenant_id=owner, data={"phone_number": after, **extra})
    action = {"phone_number.assigned": "assign", "phone_number.released": "release"}.get(kind, "update")
    await audit.record(conn, action=action, resource="did", resource_id=before.id,
                       partner_id=partner_id, tenant_id=owner, before=before, after=after)
    return after


async def grant(conn: Conn, partner_id: str, did_id: str, number: str, cnam: str | None) -> PhoneNumber:
    """The platform operator's grant: ``number`` joins the partner's inventory, unassigned and
    without fees; a 409 when it is in an inventory already. Call inside the caller's transaction."""
    if not await numbers_store.partner_exists(conn, partner_id):
        raise Problem(404, f"no partner {partner_id}", code="not_found")
    if not await numbers_store.insert_granted(conn, did_id, partner_id, number, cnam):
        raise Problem(409, f"{number} is already in an inventory", field="number", code="did_exists")
    # A granted number still offered by the carrier inventory is no longer for sale.
    await inventory_store.claim(conn, [number], partner_id)
    after = await numbers_store.get(conn, partner_id, did_id)
    assert after is not None
    await emit(conn, "phone_number.purchased", partner_id=partner_id, tenant_id=None, data={"phone_number": after})
    await audit.record(conn, action="create", resource="did", resource_id=did_id, partner_id=partner_id,
                       after=after)
    return after
