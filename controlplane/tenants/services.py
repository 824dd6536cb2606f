"""Partners, tenants and tenant defaults: the rules of seed 003 ("Managing Tenants").

Every change runs in one transaction with its Asterisk objects (the applier's
``sync_tenant``) and its outbox event; the dialplan reload is asked for after
commit, so Asterisk never sees a state the database rolled back.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar, cast

import msgspec

import asyncpg

from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier
from controlplane import audit
from controlplane.shared.ids import new_id
from controlplane.shared.problems import Problem
from controlplane.tenants import dids_store, store
from controlplane.profiles import store as profiles_store
from controlplane.signals import (AfterCommit, InTransaction, PartnerCreated, ReactivationDue, SuspensionDue,
                                 TenantStatusChanged)
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import (
    UNSET, Partner, PartnerCreate, PartnerUpdate, Tenant, TenantCreate, TenantDefaults,
    TenantStatus, TenantUpdate)
from controlplane.tenants import outbox
from controlplane.shared.pagination import PageRequest, next_page
from provisioning import validate
from provisioning.access import call_access
from provisioning.model import PartnerStatus
from provisioning.validate import Invalid

T = TypeVar("T")


def checked(fn: Callable[[object, str], str], value: object, field: str) -> str:
    """Run a whitelist check, turning ``Invalid`` into a 422 naming the field."""
    try:
        return fn(value, field)
    except Invalid as exc:
        raise Problem(422, f"{exc.field}: {exc.message}", field=exc.field) from None


def max_extensions(tier: Tier) -> int | None:
    prices = DEFAULT_SCHEDULE.prices_at(tier, datetime.now(UTC))
    return prices.max_extensions if prices else None


@dataclass
class TenantServices:
    pool: asyncpg.Pool
    applier: Applier
    # Sent after a status change committed (controlplane/limits: admission, calls in progress).
    status_changed: AfterCommit[TenantStatusChanged] | None = None
    # Sent inside the partner's creation (controlplane/profiles: its default billing profiles).
    partner_created: InTransaction[PartnerCreated] | None = None

    # ---------------------------------------------------------------- partners

    async def create_partner(self, body: PartnerCreate) -> Partner:
        name = checked(validate.name, body.name, "name")
        partner_id = new_id("ptr")
        async with self.pool.acquire() as conn, conn.transaction():
            await store.insert_partner(conn, partner_id, name, body.tier)
            if self.partner_created is not None:
                # The pool's connection proxy is a Connection to every handler (it forwards each call).
                await self.partner_created.send(cast(asyncpg.Connection, conn), PartnerCreated(partner_id))
            created = await self._partner(conn, partner_id)
            await audit.record(conn, action="create", resource="partner", resource_id=partner_id,
                               partner_id=partner_id, after=created)
            return created

    async def get_partner(self, partner_id: str) -> Partner:
        async with self.pool.acquire() as conn:
            return await self._partner(conn, partner_id)

    async def list_partners(self, page: PageRequest, tier: str | None) -> tuple[list[Partner], str | None]:
        if tier is not None and tier not in Tier.__members__:
            raise Problem(422, f"tier must be one of {', '.join(Tier)}", field="tier")
        async with self.pool.acquire() as conn:
            rows = await store.list_partners(conn, page, tier)
        partners = [store.partner_from(r, max_extensions(Tier(r["tier"]))) for r in rows]
        return next_page(partners, page)

    async def update_partner(self, partner_id: str, body: PartnerUpdate) -> Partner:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._partner(conn, partner_id, lock=True)
            name = current.name if body.name is UNSET else checked(validate.name, body.name, "name")
            tier = current.tier if body.tier is UNSET else body.tier
            cap = max_extensions(tier)
            if cap is not None and current.extension_count > cap:
                raise Problem(409, f"the partner has {current.extension_count} extensions; the {tier.title()}"
                              f" tier allows {cap:,}", code="tier_limit")
            await store.update_partner(conn, partner_id, name, tier)
            updated = await self._partner(conn, partner_id)
            await audit.record(conn, action="update", resource="partner", resource_id=partner_id,
                               partner_id=partner_id, before=current, after=updated)
            return updated

    async def delete_partner(self, partner_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._partner(conn, partner_id, lock=True)
            if await store.partner_has_children(conn, partner_id):
                raise Problem(409, "the partner still has tenants or DIDs", code="partner_in_use")
            await store.delete_partner(conn, partner_id)
            await audit.record(conn, action="delete", resource="partner", resource_id=partner_id,
                               partner_id=partner_id, before=current)

    async def _partner(self, conn: store.Conn, partner_id: str, *, lock: bool = False) -> Partner:
        row = await store.partner_record(conn, partner_id, lock=lock)
        if row is None:
            raise Problem(404, f"no partner {partner_id}", code="not_found")
        return store.partner_from(row, max_extensions(Tier(row["tier"])))

    # ---------------------------------------------------------------- tenants

    async def create_tenant(self, partner_id: str, body: TenantCreate) -> Tenant:
        name = checked(validate.name, body.name, "name")
        email = checked(validate.email, body.billing_email, "billing_email")
        if body.status is TenantStatus.CANCELLED:
            raise Problem(422, "a new tenant cannot start CANCELLED", field="status")
        async with self.pool.acquire() as conn, conn.transaction():
            await self._partner(conn, partner_id)
            defaults = await store.get_defaults(conn, partner_id)
            tz = body.timezone if body.timezone is not UNSET else (defaults.timezone or "UTC")
            cnam = body.default_cnam if body.default_cnam is not UNSET else defaults.default_cnam
            tenant = Tenant(
                id=new_id("ten"), partner_id=partner_id, name=name, billing_email=email,
                sip_prefix=await self._prefix(conn, body.sip_prefix, name),
                default_cnam=None if cnam is None else checked(validate.cnam, cnam, "default_cnam"),
                timezone=checked(validate.timezone, tz, "timezone"), status=body.status,
                extension_count=0, did_count=0, cancelled_at=None, purge_after=None,
                created_at=datetime.now(UTC), updated_at=datetime.now(UTC))
            try:
                await store.insert_tenant(conn, tenant)
            except asyncpg.UniqueViolationError:
                raise Problem(409, f"SIP prefix {tenant.sip_prefix} is taken", field="sip_prefix",
                              code="sip_prefix_taken") from None
            created = await self._tenant(conn, partner_id, tenant.id)
            await outbox.tenant(conn, created, None)
            await audit.record(conn, action="create", resource="tenant", resource_id=created.id,
                               partner_id=partner_id, tenant_id=created.id, after=created)
        self.applier.dialplan_changed()
        return created

    async def _prefix(self, conn: store.Conn, requested: str | None, name: str) -> str:
        if requested is not None:
            prefix = checked(validate.sip_prefix, requested, "sip_prefix")
            if await store.prefix_taken(conn, [prefix]):
                raise Problem(409, f"SIP prefix {prefix} is taken", field="sip_prefix", code="sip_prefix_taken")
            return prefix
        base = validate.suggest_prefix(name)
        candidates = [base] + [base[: 12 - len(str(i))] + str(i) for i in range(2, 200)]
        taken = await store.prefix_taken(conn, candidates)
        for candidate in candidates:
            if candidate not in taken:
                return candidate
        return "t" + secrets.token_hex(5)

    async def get_tenant(self, partner_id: str, tenant_id: str) -> Tenant:
        async with self.pool.acquire() as conn:
            return await self._tenant(conn, partner_id, tenant_id)

    async def list_tenants(self, partner_id: str, page: PageRequest, status: str | None,
                           search: str | None, tenant_ids: frozenset[str] | None = None
                           ) -> tuple[list[Tenant], str | None]:
        if status is not None and status not in TenantStatus.__members__:
            raise Problem(422, f"status must be one of {', '.join(TenantStatus)}", field="status")
        if search is not None and len(search) > 100:
            raise Problem(422, "q: at most 100 characters", field="q")
        async with self.pool.acquire() as conn:
            return next_page(await store.list_tenants(conn, partner_id, page, status, search, tenant_ids),
                             page)

    async def update_tenant(self, partner_id: str, tenant_id: str, body: TenantUpdate) -> Tenant:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._tenant(conn, partner_id, tenant_id, lock=True)
            for field in ("sip_prefix", "partner_id"):
                value = getattr(body, field)
                if value is not UNSET and value != getattr(current, field):
                    raise Problem(409, f"{field} cannot be changed once the tenant exists", field=field,
                                  code="immutable")
            if body.created_at is not UNSET:
                raise Problem(409, "created_at cannot be changed", field="created_at", code="immutable")
            status = current.status if body.status is UNSET else body.status
            if current.status is TenantStatus.CANCELLED and status is TenantStatus.CANCELLED:
                raise Problem(409, "a cancelled tenant is read-only; reactivate it first", code="tenant_cancelled")
            updated = msgspec_replace(
                current,
                name=current.name if body.name is UNSET else checked(validate.name, body.name, "name"),
                billing_email=current.billing_email if body.billing_email is UNSET
                else checked(validate.email, body.billing_email, "billing_email"),
                default_cnam=current.default_cnam if body.default_cnam is UNSET
                else (None if body.default_cnam is None else checked(validate.cnam, body.default_cnam, "default_cnam")),
                timezone=current.timezone if body.timezone is UNSET
                else checked(validate.timezone, body.timezone, "timezone"),
                status=status)
            result = await self._set_status_and_save(conn, current, updated)
        self.applier.dialplan_changed()
        await self._announce(current, result)
        return result

    async def delete_tenant(self, partner_id: str, tenant_id: str, confirm: str | None) -> Tenant:
        """Seed 003 "Deleting a tenant": CANCELLED, extensions unregister, DIDs released."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._tenant(conn, partner_id, tenant_id, lock=True)
            if current.status is TenantStatus.CANCELLED:
                return current
            if await dids_store.count_assigned(conn, tenant_id) and confirm != current.name:
                raise Problem(409, f"the tenant still has {current.did_count} DID(s) assigned; repeat with"
                              " ?confirm=<the tenant's name> to cancel it and release them",
                              field="confirm", code="confirmation_required")
            result = await self._set_status_and_save(conn, current,
                                                     msgspec_replace(current, status=TenantStatus.CANCELLED))
        self.applier.dialplan_changed()
        await self._announce(current, result)
        return result

    async def suspend_for(self, partner_id: str, tenant_id: str, cause: str) -> Tenant:
        """Auto-suspension (controlplane/limits): a manual suspension whose tenant.suspended names the cause."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._tenant(conn, partner_id, tenant_id, lock=True)
            # The tenant's own status (its partner's does not change it): already refused, nothing to do.
            if not call_access(current.status, PartnerStatus.ACTIVE).outbound:
                return current
            result = await self._set_status_and_save(
                conn, current, msgspec_replace(current, status=TenantStatus.SUSPENDED), cause=cause)
        self.applier.dialplan_changed()
        await self._announce(current, result, cause)
        return result

    async def suspension_due(self, due: SuspensionDue) -> None:
        """The ``suspension_due`` handler: a cap was reached with auto-suspend on, or dunning's
        suspension point passed (cause "dunning:<invoice id>")."""
        await self.suspend_for(due.partner_id, due.tenant_id, due.cause)

    async def reactivate_for(self, partner_id: str, tenant_id: str, cause: str) -> Tenant:
        """What suspended the tenant is resolved: ACTIVE again, but only while ``cause`` is still its
        stored suspension cause (one suspended by hand, or for another cause since, stays suspended)."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._tenant(conn, partner_id, tenant_id, lock=True)
            if current.status is not TenantStatus.SUSPENDED or await store.suspension_cause(conn, tenant_id) != cause:
                return current
            result = await self._set_status_and_save(
                conn, current, msgspec_replace(current, status=TenantStatus.ACTIVE), cause=cause)
        self.applier.dialplan_changed()
        await self._announce(current, result, cause)
        return result

    async def reactivation_due(self, due: ReactivationDue) -> None:
        """The ``reactivation_due`` handler (controlplane/dunning: the invoice was paid)."""
        await self.reactivate_for(due.partner_id, due.tenant_id, due.cause)

    async def _announce(self, before: Tenant, after: Tenant, cause: str | None = None) -> None:
        """After commit: a changed status is sent to whoever reacts (``tenant_status_changed``)."""
        if self.status_changed is not None and before.status != after.status:
            await self.status_changed.send(TenantStatusChanged(
                partner_id=after.partner_id, tenant_id=after.id, previous=before.status.value,
                status=after.status.value, cause=cause))

    async def _set_status_and_save(self, conn: store.Conn, current: Tenant, updated: Tenant,
                                   cause: str | None = None) -> Tenant:
        cancelled_at = current.cancelled_at
        if updated.status is TenantStatus.CANCELLED and current.status is not TenantStatus.CANCELLED:
            cancelled_at = datetime.now(UTC)
            await dids_store.release_for_tenant(conn, current.id)
        elif current.status is TenantStatus.CANCELLED and updated.status is not TenantStatus.CANCELLED:
            if current.purge_after and current.purge_after < datetime.now(UTC):
                raise Problem(409, "the tenant was cancelled more than 90 days ago", code="tenant_purged")
            cancelled_at = None
            await dids_store.restore_for_tenant(conn, current.id)
        await store.update_tenant(conn, updated, cancelled_at)
        if updated.status is not current.status:
            # Stored, not only announced: a reactivation for a resolved cause checks it.
            await store.set_suspension_cause(
                conn, current.id, (cause or "manual") if updated.status is TenantStatus.SUSPENDED else None)
        await self.applier.sync_tenant(conn, current.id)
        result = await self._tenant(conn, current.partner_id, current.id)
        if cause is None:
            await outbox.tenant(conn, result, current.status)
        else:
            from controlplane.events import emit
            await emit(conn, outbox.tenant_event(current.status, result.status), partner_id=result.partner_id,
                       tenant_id=result.id, data={"tenant": result, "previous_status": current.status.value,
                                                  "cause": cause})
        await audit.record(conn, action="update", resource="tenant", resource_id=current.id,
                           partner_id=current.partner_id, tenant_id=current.id, before=current, after=result)
        return result

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str, *, lock: bool = False) -> Tenant:
        tenant = await store.get_tenant(conn, partner_id, tenant_id, lock=lock)
        if tenant is None:
            raise Problem(404, f"no tenant {tenant_id} for this partner", code="not_found")
        return tenant

    async def purge_expired(self) -> list[str]:
        """Scheduled job: data of tenants cancelled over 90 days ago is deleted."""
        async with self.pool.acquire() as conn, conn.transaction():
            purged = await store.purge_expired(conn)
        return purged

    # ---------------------------------------------------------------- tenant defaults

    async def get_defaults(self, partner_id: str) -> TenantDefaults:
        async with self.pool.acquire() as conn:
            await self._partner(conn, partner_id)
            return await store.get_defaults(conn, partner_id)

    async def put_defaults(self, partner_id: str, body: TenantDefaults) -> TenantDefaults:
        defaults = TenantDefaults(
            timezone=None if body.timezone is None else checked(validate.timezone, body.timezone, "timezone"),
            default_cnam=None if body.default_cnam is None
            else checked(validate.cnam, body.default_cnam, "default_cnam"),
            billing_profile_id=body.billing_profile_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._partner(conn, partner_id)
            if body.billing_profile_id is not None and \
                    body.billing_profile_id not in await profiles_store.live_ids(conn, partner_id):
                raise Problem(422, "billing_profile_id: no such billing profile", field="billing_profile_id")
            before = await store.get_defaults(conn, partner_id)
            await store.put_defaults(conn, partner_id, defaults)
            await audit.record(conn, action="update", resource="tenant_defaults", resource_id=partner_id,
                               partner_id=partner_id, before=before, after=defaults)
        return defaults


def msgspec_replace(tenant: Tenant, **changes: object) -> Tenant:
    return msgspec.structs.replace(tenant, **changes)
