"""Extensions and DIDs: tier caps, one-time SIP passwords, DID assignment.

The SIP password is generated here, returned once, and stored only as the
PJSIP md5_cred digest MD5(user:realm:password); it is never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import msgspec

from controlplane import audit
from controlplane.shared.ids import new_id
from controlplane.shared.problems import Problem
from controlplane.limits import caps as limit_caps
from controlplane.numbers import assignment, numbers_store
from controlplane.tenants import dids_store, extensions_store, store
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import (
    UNSET, Did, DidCreate, DidStatus, DidUpdate, Extension, ExtensionCreate, ExtensionCredentials,
    ExtensionSecrets, ExtensionUpdate, Tier, Tenant, TenantStatus)
from controlplane.tenants import outbox
from controlplane.shared.pagination import PageRequest, next_page
from controlplane.tenants.services import checked, max_extensions
from provisioning import validate
from provisioning.names import REALM, endpoint_name


def _credentials(ext: Extension, password: str) -> ExtensionCredentials:
    shown = ExtensionSecrets(sip_password=password)
    return ExtensionCredentials(**msgspec.structs.asdict(ext), secrets=shown)


def sip_ha1(username: str, password: str, realm: str = REALM) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def new_password() -> str:
    # 128 bits, URL-safe: easy to paste into a phone's web UI.
    return secrets.token_urlsafe(16)


def cap_message(tier: Tier, cap: int) -> str:
    tiers = list(Tier)
    upgrade = tiers[tiers.index(tier) + 1]
    upgrade_cap = max_extensions(upgrade)
    room = f"up to {upgrade_cap:,}" if upgrade_cap else "unlimited"
    return (f"the {tier.value.title()} tier allows at most {cap:,} extensions across all of your tenants;"
            f" upgrade to {upgrade.value.title()} for {room} extensions")


T = TypeVar("T")
CapHook = assignment.CapHook


@dataclass
class NumberingServices:
    pool: asyncpg.Pool
    applier: Applier
    on_cap_tripped: CapHook | None = None

    async def _tripping(self, partner_id: str, work: Awaitable[T]) -> T:
        """``work``; a tenant cap it tripped is reported after its transaction rolled back."""
        return await assignment.guarded(self.on_cap_tripped, partner_id, work)

    # ---------------------------------------------------------------- extensions

    async def create_extension(self, partner_id: str, tenant_id: str,
                               body: ExtensionCreate) -> ExtensionCredentials:
        return await self._tripping(partner_id, self._create_extension(partner_id, tenant_id, body))

    async def _create_extension(self, partner_id: str, tenant_id: str,
                                body: ExtensionCreate) -> ExtensionCredentials:
        number = checked(validate.extension_number, body.number, "number")
        display = checked(validate.display_name, body.display_name, "display_name")
        async with self.pool.acquire() as conn, conn.transaction():
            partner = await store.partner_record(conn, partner_id, lock=True)
            if partner is None:
                raise Problem(404, f"no partner {partner_id}", code="not_found")
            tenant = await self._tenant(conn, partner_id, tenant_id)
            if tenant.status in (TenantStatus.SUSPENDED, TenantStatus.CANCELLED):
                raise Problem(409, f"the tenant is {tenant.status.value}: no new extensions",
                              code="tenant_not_active")
            await limit_caps.check_extension(conn, tenant_id)  # the tenant's own cap (controlplane/limits)
            tier = Tier(partner["tier"])
            cap = max_extensions(tier)
            if cap is not None and partner["extension_count"] >= cap:
                raise Problem(409, cap_message(tier, cap), code="extension_limit",
                              extra={"limit": cap, "tier": tier.value})
            password = new_password()
            username = endpoint_name(tenant.sip_prefix, number)
            ext_id = new_id("ext")
            if not await extensions_store.insert(conn, ext_id, tenant_id, number, display,
                                                 sip_ha1(username, password), body.voicemail_enabled):
                raise Problem(409, f"extension {number} already exists in this tenant", field="number",
                              code="extension_exists")
            await self.applier.sync_tenant(conn, tenant_id)
            ext = await self._extension(conn, tenant_id, ext_id)
            await outbox.extension(conn, "extension.created", partner_id, ext)
            await audit.record(conn, action="create", resource="extension", resource_id=ext_id,
                               partner_id=partner_id, tenant_id=tenant_id, after=ext)
        self.applier.dialplan_changed()
        return _credentials(ext, password)

    async def get_extension(self, partner_id: str, tenant_id: str, ext_id: str) -> Extension:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            return await self._extension(conn, tenant_id, ext_id)

    async def list_extensions(self, partner_id: str, tenant_id: str, page: PageRequest,
                              search: str | None) -> tuple[list[Extension], str | None]:
        if search is not None and len(search) > 100:
            raise Problem(422, "q: at most 100 characters", field="q")
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            return next_page(await extensions_store.list_page(conn, tenant_id, page, search), page)

    async def update_extension(self, partner_id: str, tenant_id: str, ext_id: str,
                               body: ExtensionUpdate) -> Extension:
        async with self.pool.acquire() as conn, conn.transaction():
            tenant = await self._tenant(conn, partner_id, tenant_id)
            self._writable(tenant)
            ext = await self._extension(conn, tenant_id, ext_id)
            if body.number is not UNSET and body.number != ext.number:
                raise Problem(409, "an extension's number cannot change (it is its SIP username);"
                              " create a new extension instead", field="number", code="immutable")
            display = ext.display_name if body.display_name is UNSET \
                else checked(validate.display_name, body.display_name, "display_name")
            voicemail = ext.voicemail_enabled if body.voicemail_enabled is UNSET else body.voicemail_enabled
            await extensions_store.update(conn, ext_id, display, voicemail)
            await self.applier.sync_tenant(conn, tenant_id)
            updated = await self._extension(conn, tenant_id, ext_id)
            await outbox.extension(conn, "extension.updated", partner_id, updated)
            await audit.record(conn, action="update", resource="extension", resource_id=ext_id,
                               partner_id=partner_id, tenant_id=tenant_id, before=ext, after=updated)
        self.applier.dialplan_changed()
        return updated

    async def reset_password(self, partner_id: str, tenant_id: str, ext_id: str) -> ExtensionCredentials:
        async with self.pool.acquire() as conn, conn.transaction():
            tenant = await self._tenant(conn, partner_id, tenant_id)
            self._writable(tenant)
            ext = await self._extension(conn, tenant_id, ext_id)
            password = new_password()
            await extensions_store.set_ha1(conn, ext_id, sip_ha1(ext.sip_username, password))
            await self.applier.sync_tenant(conn, tenant_id)
            await outbox.extension(conn, "extension.updated", partner_id, ext)
            await audit.record(conn, action="reset_password", resource="extension", resource_id=ext_id,
                               partner_id=partner_id, tenant_id=tenant_id, before={"sip_password": "old"},
                               after={"sip_password": "new"})
        return _credentials(ext, password)

    async def delete_extension(self, partner_id: str, tenant_id: str, ext_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            tenant = await self._tenant(conn, partner_id, tenant_id)
            self._writable(tenant)
            ext = await self._extension(conn, tenant_id, ext_id)
            await extensions_store.delete(conn, ext_id)
            await self.applier.sync_tenant(conn, tenant_id)
            await outbox.extension(conn, "extension.deleted", partner_id, ext)
            await audit.record(conn, action="delete", resource="extension", resource_id=ext_id,
                               partner_id=partner_id, tenant_id=tenant_id, before=ext)
        self.applier.dialplan_changed()

    # ---------------------------------------------------------------- DIDs

    # The deprecated /v1/dids alias (docs/numbers.md): reads in its own shape, every change
    # through the numbers capability's one path (controlplane/numbers/assignment.py).

    async def create_did(self, partner_id: str, body: DidCreate) -> Did:
        """The platform operator's grant (POST /v1/dids, platform token only): a DID outside
        a purchase, without fees. Partners get numbers by purchase or a completed port."""
        number = checked(validate.e164, body.number, "number")
        cnam = None if body.cnam is None else checked(validate.cnam, body.cnam, "cnam")
        did_id = new_id("did")
        async with self.pool.acquire() as conn, conn.transaction():
            await assignment.grant(conn, partner_id, did_id, number, cnam)
            did = await self._did(conn, partner_id, did_id)
        return did

    async def get_did(self, partner_id: str, did_id: str) -> Did:
        async with self.pool.acquire() as conn:
            return await self._did(conn, partner_id, did_id)

    async def list_dids(self, partner_id: str, page: PageRequest, tenant_id: str | None, status: str | None,
                        assigned: bool | None, search: str | None, tenant_ids: frozenset[str] | None = None
                        ) -> tuple[list[Did], str | None]:
        if status is not None and status not in DidStatus.__members__:
            raise Problem(422, f"status must be one of {', '.join(DidStatus)}", field="status")
        if search is not None and not (search.lstrip("+").isdigit() and len(search) <= 16):
            raise Problem(422, "q: digits of a phone number", field="q")
        async with self.pool.acquire() as conn:
            return next_page(await dids_store.list_page(conn, partner_id, page, tenant_id, status, assigned,
                                                        search, tenant_ids), page)

    async def update_did(self, partner_id: str, did_id: str, body: DidUpdate) -> Did:
        """Assign to a tenant (and route to one of its extensions), unassign, or set the CNAM:
        one change of ``assignment.change``, as ``/v1/numbers/{id}/assign|release|route`` make."""
        return await self._tripping(partner_id, self._update_did(partner_id, did_id, body))

    async def _update_did(self, partner_id: str, did_id: str, body: DidUpdate) -> Did:
        cnam = assignment.KEEP if body.cnam is UNSET else (
            None if body.cnam is None else checked(validate.cnam, body.cnam, "cnam"))
        async with self.pool.acquire() as conn, conn.transaction():
            before = await numbers_store.get(conn, partner_id, did_id, lock=True)
            if before is None:
                raise Problem(404, f"no DID {did_id} for this partner", code="not_found")
            tenant_id = before.tenant_id if body.tenant_id is UNSET else body.tenant_id
            extension_id = before.extension_id if body.extension_id is UNSET else body.extension_id
            if tenant_id != before.tenant_id and body.extension_id is UNSET:
                extension_id = None
            await assignment.change(conn, partner_id, before, tenant_id, extension_id, cnam=cnam)
            result = await self._did(conn, partner_id, did_id)
        self.applier.dialplan_changed()
        return result

    async def delete_did(self, partner_id: str, did_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            did = await self._did(conn, partner_id, did_id, lock=True)
            if did.tenant_id is not None:
                raise Problem(409, "the DID is assigned to a tenant; unassign it first", code="did_assigned")
            await dids_store.delete(conn, did_id)
            await outbox.did(conn, "phone_number.released", did, None)
            await audit.record(conn, action="delete", resource="did", resource_id=did_id, partner_id=partner_id,
                               before=did)
        self.applier.dialplan_changed()

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _writable(tenant: Tenant) -> None:
        if tenant.status is TenantStatus.CANCELLED:
            raise Problem(409, "a cancelled tenant is read-only; reactivate it first", code="tenant_cancelled")

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> Tenant:
        tenant = await store.get_tenant(conn, partner_id, tenant_id)
        if tenant is None:
            raise Problem(404, f"no tenant {tenant_id} for this partner", code="not_found")
        return tenant

    async def _extension(self, conn: store.Conn, tenant_id: str, ext_id: str) -> Extension:
        ext = await extensions_store.get(conn, tenant_id, ext_id)
        if ext is None:
            raise Problem(404, f"no extension {ext_id} in this tenant", code="not_found")
        return ext

    async def _did(self, conn: store.Conn, partner_id: str, did_id: str, *, lock: bool = False) -> Did:
        did = await dids_store.get(conn, partner_id, did_id, lock=lock)
        if did is None:
            raise Problem(404, f"no DID {did_id} for this partner", code="not_found")
        return did
