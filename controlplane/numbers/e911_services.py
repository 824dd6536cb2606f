"""E911 registration (per number, bulk, a whole tenant), bulk assign/release, compliance.

An address is validated before anything is written (422 naming the field); the
number is then PENDING until the provider answers REGISTERED or FAILED. Every
registered address changes which number a 911 call presents, so the dialplan is
re-rendered after each outcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from controlplane.events import emit
from controlplane.shared.problems import Problem
from controlplane.numbers import assignment, numbers_store
from controlplane.numbers.inventory_store import Conn
from controlplane.numbers.models import (BulkChange, BulkRequest, BulkSummary, ComplianceReport, ComplianceRow,
                                         E911Address, PhoneNumber)
from controlplane.numbers.services import NumberServices
from e911.address import Address, AddressInvalid, validate
from e911.provider import BuiltinE911Provider, E911Provider, E911Status, Registration

log = structlog.get_logger(__name__)
MAX_BULK = 1000


def checked_address(body: E911Address, prefix: str = "address") -> E911Address:
    """The normalised address, or a 422 naming ``address.<field>`` and the reason."""
    try:
        clean = validate(Address(street=body.street, city=body.city, state=body.state, zip=body.zip,
                                 unit=body.unit, country=body.country))
    except AddressInvalid as exc:
        raise Problem(422, f"{prefix}.{exc.field}: {exc.reason}", field=f"{prefix}.{exc.field}",
                      code="address_invalid") from None
    return E911Address(street=clean.street, city=clean.city, state=clean.state, zip=clean.zip, unit=clean.unit,
                       country=clean.country)


@dataclass
class E911Services:
    numbers: NumberServices
    provider: E911Provider = field(default_factory=BuiltinE911Provider)

    async def register(self, partner_id: str, did_id: str, address: E911Address,
                       apply_to_tenant: bool = False) -> list[PhoneNumber]:
        """One number, or with ``apply_to_tenant`` every number of its tenant."""
        clean = checked_address(address)
        async with self.numbers.pool.acquire() as conn:
            did = await self.numbers.number(conn, partner_id, did_id)
            ids = [did_id]
            if apply_to_tenant:
                if did.tenant_id is None:
                    raise Problem(409, "apply_to_tenant: the number has no tenant", field="apply_to_tenant",
                                  code="not_assigned")
                ids = await numbers_store.tenant_ids_of(conn, did.tenant_id)
        return await self._register_many(partner_id, ids, clean)

    async def _register_many(self, partner_id: str, ids: list[str], address: E911Address) -> list[PhoneNumber]:
        pending: list[PhoneNumber] = []
        async with self.numbers.pool.acquire() as conn, conn.transaction():
            for did in await numbers_store.get_many(conn, partner_id, ids):
                await numbers_store.set_e911(conn, did.id, E911Status.PENDING, address, None)
                after = await self.numbers.number(conn, partner_id, did.id)
                await self._emit(conn, after, did.e911_status)
                pending.append(after)
        self.numbers.changed()  # a PENDING number no longer counts as registered
        results = await asyncio.gather(*(self._provider(d.number, address) for d in pending))
        final: list[PhoneNumber] = []
        async with self.numbers.pool.acquire() as conn, conn.transaction():
            for did, result in zip(pending, results):
                if result.status is E911Status.PENDING:  # the provider confirms later
                    final.append(did)
                    continue
                if await numbers_store.set_e911(conn, did.id, result.status, address, result.reason, sent=address):
                    did = await self.numbers.number(conn, partner_id, did.id)
                    await self._emit(conn, did, E911Status.PENDING)
                final.append(did)
        self.numbers.changed()
        return final

    async def _provider(self, number: str, address: E911Address) -> Registration:
        try:
            return await asyncio.wait_for(self.provider.register(number, Address(
                street=address.street, city=address.city, state=address.state, zip=address.zip,
                unit=address.unit, country=address.country)), 30)
        except Exception as exc:
            log.warning("e911.provider_failed", number=number, error=str(exc))
            return Registration(E911Status.FAILED, "the E911 provider did not answer; save again to retry")

    async def _emit(self, conn: Conn, did: PhoneNumber, before: E911Status) -> None:
        await emit(conn, "e911.status_changed", partner_id=did.partner_id, tenant_id=did.tenant_id,
                   data={"phone_number": did, "previous_status": before.value})

    async def compliance(self, partner_id: str, status: str | None, tenant_id: str | None) -> ComplianceReport:
        if status is not None and status not in E911Status.__members__:
            raise Problem(422, f"e911_status: one of {', '.join(E911Status)}", field="e911_status")
        async with self.numbers.pool.acquire() as conn:
            counts, rows = await numbers_store.compliance(conn, partner_id, status, tenant_id)
        by_status = {s.value: counts.get(s.value, 0) for s in E911Status}
        return ComplianceReport(total=sum(by_status.values()), by_status=by_status, items=[
            ComplianceRow(id=r["id"], number=r["number"], tenant_id=r["tenant_id"], tenant_name=r["tenant_name"],
                          e911_status=E911Status(r["e911_status"]), e911_error=r["e911_error"]) for r in rows])

    # ---------------------------------------------------------------- bulk

    async def bulk(self, partner_id: str, body: BulkRequest) -> BulkSummary:
        """assign | release | e911 over many numbers; ``dry_run`` returns the summary only.

        All or nothing: an assignment beyond the tenant's ``max_dids`` changes nothing (409
        ``usage_limit``) and, unless a dry run, is reported like any other (assignment.py)."""
        if body.dry_run:
            return await self._bulk(partner_id, body)
        return await self.numbers.assigning(partner_id, self._bulk(partner_id, body))

    async def _bulk(self, partner_id: str, body: BulkRequest) -> BulkSummary:
        if body.action not in ("assign", "release", "e911"):
            raise Problem(422, "action: one of assign, release, e911", field="action")
        ids = sorted(set(body.ids))
        if not ids or len(ids) > MAX_BULK:
            raise Problem(422, f"ids: 1-{MAX_BULK} numbers", field="ids")
        address = None
        if body.action == "assign" and not body.tenant_id:
            raise Problem(422, "tenant_id: required to assign", field="tenant_id")
        if body.action == "e911":
            if body.address is None:
                raise Problem(422, "address: required for a bulk E911 update", field="address")
            address = checked_address(body.address)
        async with self.numbers.pool.acquire() as conn, conn.transaction():
            found = {d.id: d for d in await numbers_store.get_many(conn, partner_id, ids)}
            items = [self._plan(body, found.get(i), i, address) for i in ids]
            todo = [c for c in items if c.applied]
            if body.action == "assign" and todo:
                assert body.tenant_id is not None
                # The whole batch first, so a dry run answers for all of it; each number is
                # then checked again (and the threshold alert sent) as it is assigned.
                await assignment.admit(conn, partner_id, body.tenant_id, len(todo), announce=False)
            if body.dry_run:
                for c in todo:
                    c.applied = False
                return BulkSummary(action=body.action, dry_run=True, changed=len(todo),
                                   skipped=len(items) - len(todo), items=items)
            if body.action != "e911":
                for change in todo:
                    await assignment.change(conn, partner_id, found[change.id],
                                            body.tenant_id if body.action == "assign" else None, None, bulk=True)
        if body.action == "e911" and todo:
            assert address is not None
            outcome = {d.id: d for d in await self._register_many(partner_id, [c.id for c in todo], address)}
            for c in todo:
                c.change = f"E911 {outcome[c.id].e911_status.value}" + (
                    f": {outcome[c.id].e911_error}" if outcome[c.id].e911_error else "")
        self.numbers.changed()
        return BulkSummary(action=body.action, dry_run=False, changed=len(todo), skipped=len(items) - len(todo),
                           items=items)

    @staticmethod
    def _plan(body: BulkRequest, did: PhoneNumber | None, did_id: str, address: E911Address | None) -> BulkChange:
        if did is None:
            return BulkChange(id=did_id, number="", change="skipped: no such number", applied=False)
        if body.action == "assign":
            if did.tenant_id == body.tenant_id:
                return BulkChange(id=did.id, number=did.number, change="skipped: already assigned", applied=False)
            if did.tenant_id is not None:
                return BulkChange(id=did.id, number=did.number, change="skipped: assigned to another tenant",
                                  applied=False)
            return BulkChange(id=did.id, number=did.number, change=f"assign to {body.tenant_id}", applied=True)
        if body.action == "release":
            if did.tenant_id is None:
                return BulkChange(id=did.id, number=did.number, change="skipped: not assigned", applied=False)
            return BulkChange(id=did.id, number=did.number, change=f"release from {did.tenant_id}", applied=True)
        if did.e911_address == address and did.e911_status is E911Status.REGISTERED:
            return BulkChange(id=did.id, number=did.number, change="skipped: address already registered",
                              applied=False)
        return BulkChange(id=did.id, number=did.number, change=f"register {address and address.street}",
                          applied=True)
