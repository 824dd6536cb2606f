"""Port-in requests: the pure lifecycle (porting.py) with its I/O around it.

The PIN is sealed with AES-256-GCM (the webhooks SecretBox, the port id as
associated data) and never returned. Documents (LOA, bill) are checked by size,
declared type and magic bytes. COMPLETED creates ACTIVE numbers assigned to the
target tenant. Every change commits with its ``port_request.*`` event.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from controlplane import audit
from controlplane.events import emit
from controlplane.secret_box import SecretBox
from controlplane.shared.ids import new_id
from controlplane.shared.problems import Problem
from controlplane.numbers import assignment, numbers_store, ports_store
from controlplane.numbers.inventory_store import Conn
from controlplane.numbers.models import PortAction as PortBody
from controlplane.numbers.models import PortCreate, PortRequest
from controlplane.numbers.porting import EVENTS, IllegalTransition, PortAction, PortStatus, transition
from controlplane.numbers.services import NumberServices, e164_us

MAX_DOCUMENT_BYTES = 1_000_000  # the RPC's request body limit
DOCUMENT_TYPES = {"application/pdf": (b"%PDF-",), "image/png": (b"\x89PNG\r\n\x1a\n",),
                  "image/jpeg": (b"\xff\xd8\xff",), "image/tiff": (b"II*\x00", b"MM\x00*")}
_TEXT = re.compile(r"[A-Za-z0-9 &.,'/#()-]{1,100}")
_FILENAME = re.compile(r"[A-Za-z0-9._ -]{1,100}")


def _text(value: str, field: str) -> str:
    if not _TEXT.fullmatch(value.strip()):
        raise Problem(422, f"{field}: 1-100 letters, digits, spaces and & . , ' / # ( ) -", field=field)
    return value.strip()


@dataclass
class PortServices:
    numbers: NumberServices
    box: SecretBox

    async def create(self, partner_id: str, body: PortCreate) -> PortRequest:
        if not body.numbers or len(body.numbers) > 500:
            raise Problem(422, "numbers: 1-500 numbers", field="numbers")
        numbers = sorted({e164_us(n, "numbers") for n in body.numbers})
        carrier = _text(body.losing_carrier, "losing_carrier")
        holder = _text(body.account_holder, "account_holder")
        account = _text(body.account_number, "account_number")
        if body.pin is not None and not re.fullmatch(r"[A-Za-z0-9]{1,20}", body.pin):
            raise Problem(422, "pin: 1-20 letters and digits", field="pin")
        for name in ("street", "city", "state", "zip"):
            if not getattr(body.service_address, name).strip():
                raise Problem(422, f"service_address.{name}: required", field=f"service_address.{name}")
        port_id = new_id("port")
        async with self.numbers.pool.acquire() as conn, conn.transaction():
            # A request, not yet an assignment: refused like one, but nothing is announced.
            await assignment.admit(conn, partner_id, body.tenant_id, len(numbers), announce=False)
            taken = [d.number for d in await numbers_store.by_numbers(conn, numbers)]
            if taken:
                raise Problem(409, f"already on the platform: {', '.join(taken)}", field="numbers",
                              code="number_exists", extra={"numbers": taken})
            sealed = self.box.seal(port_id, body.pin) if body.pin else None
            await ports_store.insert(conn, port_id, partner_id, body.tenant_id, numbers, carrier, holder, account,
                                     sealed, body.service_address, body.desired_date)
            port = await self._port(conn, partner_id, port_id)
            await self._emit(conn, "port_request.created", port)
        return port

    async def get(self, partner_id: str, port_id: str) -> PortRequest:
        async with self.numbers.pool.acquire() as conn:
            return await self._port(conn, partner_id, port_id)

    async def list(self, partner_id: str, status: str | None) -> list[PortRequest]:
        if status is not None and status not in PortStatus.__members__:
            raise Problem(422, f"status: one of {', '.join(PortStatus)}", field="status")
        async with self.numbers.pool.acquire() as conn:
            return await ports_store.list_for(conn, partner_id, status)

    async def pin(self, partner_id: str, port_id: str) -> str | None:
        """For the carrier submission only; never served over the RPC."""
        async with self.numbers.pool.acquire() as conn:
            await self._port(conn, partner_id, port_id)
            sealed = await ports_store.sealed_pin(conn, port_id)
        return self.box.open(port_id, sealed) if sealed else None

    async def add_document(self, partner_id: str, port_id: str, kind: str, filename: str, content_type: str,
                           content: bytes) -> PortRequest:
        if kind not in ("LOA", "BILL"):
            raise Problem(422, "kind: LOA or BILL", field="kind")
        if not _FILENAME.fullmatch(filename):
            raise Problem(422, "filename: 1-100 letters, digits, . _ - and spaces", field="filename")
        if content_type not in DOCUMENT_TYPES:
            raise Problem(422, f"Content-Type: one of {', '.join(DOCUMENT_TYPES)}", field="Content-Type")
        if not content or len(content) > MAX_DOCUMENT_BYTES:
            raise Problem(422, f"body: 1-{MAX_DOCUMENT_BYTES} bytes", field="body")
        if not content.startswith(DOCUMENT_TYPES[content_type]):
            raise Problem(422, f"body: the content is not {content_type}", field="body")
        async with self.numbers.pool.acquire() as conn, conn.transaction():
            port = await self._port(conn, partner_id, port_id, lock=True)
            if port.status in (PortStatus.COMPLETED, PortStatus.CANCELLED):
                raise Problem(409, f"the port request is {port.status.value}", code="port_closed")
            await ports_store.add_document(conn, new_id("doc"), port_id, kind, filename, content_type, content,
                                           hashlib.sha256(content).digest())
            port = await self._port(conn, partner_id, port_id)
            await self._emit(conn, "port_request.updated", port)
        return port

    async def act(self, partner_id: str, port_id: str, action: str, body: PortBody) -> PortRequest:
        """One transition; completing assigns the ported numbers (a tripped cap is reported)."""
        return await self.numbers.assigning(partner_id, self._act(partner_id, port_id, action, body))

    async def _act(self, partner_id: str, port_id: str, action: str, body: PortBody) -> PortRequest:
        try:
            act = PortAction(action)
        except ValueError:
            raise Problem(404, f"no action {action}", code="not_found") from None
        async with self.numbers.pool.acquire() as conn, conn.transaction():
            port = await self._port(conn, partner_id, port_id, lock=True)
            try:
                after = transition(port.status, act, foc_date=body.foc_date, reason=body.reason)
            except IllegalTransition as exc:
                raise Problem(409, str(exc), code="illegal_transition") from None
            except ValueError as exc:
                name = str(exc).split(":")[0]
                raise Problem(422, str(exc), field=name) from None
            if act in (PortAction.SUBMIT, PortAction.RESUBMIT) and not {"LOA", "BILL"} <= {
                    d.kind for d in port.documents}:
                raise Problem(409, "upload the signed LOA and the latest bill before submitting",
                              code="documents_missing")
            ref = None
            if act in (PortAction.SUBMIT, PortAction.RESUBMIT):
                ref = await self.numbers.carrier.submit_port(port_id, port.numbers, port.losing_carrier)
            elif act is PortAction.CANCEL and (old := await ports_store.carrier_ref(conn, port_id)):
                await self.numbers.carrier.cancel_port(old)
            if act is PortAction.COMPLETE:
                await self._complete(conn, port)
            await ports_store.update_status(conn, port_id, after, foc_date=body.foc_date,
                                            reason=body.reason if act is PortAction.REJECT else None,
                                            carrier_ref=ref)
            updated = await self._port(conn, partner_id, port_id)
            await self._emit(conn, EVENTS[after], updated)
            # Its own entry: a completion's assignments write theirs, so no generic one would.
            await audit.record(conn, action=act.value, resource="port_request", resource_id=port_id,
                               partner_id=partner_id, tenant_id=port.tenant_id, before=port, after=updated)
            port = updated
        if act is PortAction.COMPLETE:
            self.numbers.changed()
        return port

    async def _complete(self, conn: Conn, port: PortRequest) -> None:
        await assignment.admit(conn, port.partner_id, port.tenant_id, len(port.numbers), announce=False)
        for number in port.numbers:
            did_id = new_id("did")
            if not await ports_store.insert_ported_did(conn, did_id, port.partner_id, number):
                raise Problem(409, f"{number} is already on the platform", code="number_exists")
            did = await self.numbers.number(conn, port.partner_id, did_id, lock=True)
            await assignment.change(conn, port.partner_id, did, port.tenant_id, None, ported=True)

    async def _port(self, conn: Conn, partner_id: str, port_id: str, *, lock: bool = False) -> PortRequest:
        port = await ports_store.get(conn, partner_id, port_id, lock=lock)
        if port is None:
            raise Problem(404, f"no port request {port_id}", code="not_found")
        return port

    async def _emit(self, conn: Conn, event_type: str, port: PortRequest) -> None:
        await emit(conn, event_type, partner_id=port.partner_id, tenant_id=port.tenant_id,
                   data={"port_request": port})
