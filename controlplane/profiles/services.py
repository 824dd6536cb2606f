"""What the billing-profile RPC decides: the partner's templates, the default one, and a
tenant's assignment (a switch waits for the tenant's next period; overrides apply at once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from controlplane import audit
from controlplane.profiles import store
from controlplane.profiles.models import (OVERRIDE_FIELDS, AssignmentBody, AssignmentView, PricingModel,
                                          ProfileBody, ProfileView, RateOverrides)
from controlplane.profiles.rules import check_profile
from controlplane.shared.ids import new_id
from controlplane.signals import Notice, PricingChanged
from controlplane.shared.problems import Problem

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class ProfileServices:
    def __init__(self, pool: asyncpg.Pool, *, clock: Clock = _now,
                 pricing_changed: Notice[PricingChanged] | None = None) -> None:
        self.pool = pool
        self.clock = clock
        # Called with the tenant id after its pricing changed and committed (the recorder's
        # cache of billing contexts forgets it).
        self.pricing_changed = pricing_changed

    # ---------------------------------------------------------------- profiles

    async def list_profiles(self, partner_id: str) -> list[ProfileView]:
        async with self.pool.acquire() as conn:
            return [_view(r) for r in await store.list_profiles(conn, partner_id, self.clock())]

    async def get_profile(self, partner_id: str, profile_id: str) -> ProfileView:
        async with self.pool.acquire() as conn:
            return await self._get(conn, partner_id, profile_id)

    async def _get(self, conn: store.Conn, partner_id: str, profile_id: str) -> ProfileView:
        row = await store.get_profile(conn, partner_id, profile_id, self.clock())
        if row is None:
            raise Problem(404, "no such billing profile", code="not_found")
        return _view(row)

    async def _check(self, conn: store.Conn, partner_id: str, body: ProfileBody, profile_id: str | None) -> None:
        errors = check_profile(body, profile_id, await store.live_ids(conn, partner_id))
        if errors:
            raise Problem(422, "; ".join(e.message for e in errors), errors=errors)
        if await store.name_taken(conn, partner_id, body.name.strip(), profile_id):
            raise Problem(409, f"a billing profile named {body.name!r} exists", field="name", code="conflict")

    async def create_profile(self, partner_id: str, body: ProfileBody) -> ProfileView:
        body = msgspec.structs.replace(body, name=body.name.strip())
        profile_id = new_id("bpr")
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check(conn, partner_id, body, None)
            await store.insert_profile(conn, partner_id, profile_id, body)
            created = await self._get(conn, partner_id, profile_id)
            await audit.record(conn, action="create", resource="billing_profile", resource_id=profile_id,
                               partner_id=partner_id, after=created)
        return created

    async def update_profile(self, partner_id: str, profile_id: str, body: ProfileBody) -> ProfileView:
        """A change applies to every tenant on the profile from now (a template edit, not a
        switch); their past calls keep the price they were recorded with."""
        body = msgspec.structs.replace(body, name=body.name.strip())
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.lock_profile(conn, partner_id, profile_id):
                raise Problem(404, "no such billing profile", code="not_found")
            before = await self._get(conn, partner_id, profile_id)
            await self._check(conn, partner_id, body, profile_id)
            await store.update_profile(conn, partner_id, profile_id, body)
            after = await self._get(conn, partner_id, profile_id)
            await audit.record(conn, action="update", resource="billing_profile", resource_id=profile_id,
                               partner_id=partner_id, before=before, after=after)
        if self.pricing_changed is not None:
            self.pricing_changed.send(PricingChanged(None))
        return after

    async def delete_profile(self, partner_id: str, profile_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.lock_profile(conn, partner_id, profile_id):
                raise Problem(404, "no such billing profile", code="not_found")
            tenants = await store.tenants_on(conn, profile_id, self.clock())
            if tenants:
                raise Problem(409, f"{tenants} tenant(s) are on this billing profile: switch them first",
                              code="profile_in_use", extra={"tenants": tenants})
            followers = await store.followers(conn, profile_id)
            if followers:
                raise Problem(409, f"the trial of {', '.join(followers)} ends on this billing profile",
                              code="profile_in_use", extra={"tenants": 0})
            before = await self._get(conn, partner_id, profile_id)
            await store.delete_profile(conn, profile_id)
            await audit.record(conn, action="delete", resource="billing_profile", resource_id=profile_id,
                               partner_id=partner_id, before=before)

    async def partner_created(self, conn: asyncpg.Connection, partner_id: str) -> None:
        """In the partner's creation transaction: its two default profiles."""
        await store.create_defaults(conn, partner_id)

    # ---------------------------------------------------------------- tenants

    async def assignment(self, partner_id: str, tenant_id: str) -> AssignmentView:
        async with self.pool.acquire() as conn:
            return await self._assignment(conn, partner_id, tenant_id)

    async def _assignment(self, conn: store.Conn, partner_id: str, tenant_id: str) -> AssignmentView:
        pricing = await store.tenant_pricing(conn, tenant_id)
        if pricing is None or pricing.partner_id != partner_id:
            raise Problem(404, "no such tenant", code="not_found")
        now = self.clock()
        current, following = pricing.at(now)
        period = pricing.period(now)
        o = pricing.overrides or RateOverrides()
        return AssignmentView(
            tenant_id=tenant_id, profile_id=current.terms.profile_id if current else None,
            profile_name=current.terms.name if current else None,
            model=current.terms.model if current else None, since=current.since if current else None,
            next_profile_id=following.terms.profile_id if following else None,
            next_effective_from=following.since if following else None,
            period_start=period.start, period_end=period.end, updated_at=pricing.overrides_at,
            **{f: getattr(o, f) for f in OVERRIDE_FIELDS})

    async def assign(self, partner_id: str, tenant_id: str, body: AssignmentBody) -> AssignmentView:
        """``profile_id``: the tenant moves to it at the start of its next period (seed 003
        "Switching a tenant"), from its current period if it has none; the same profile cancels a waiting
        switch. The rate fields are the tenant's overrides, replaced as a whole, at once."""
        values = {f: getattr(body, f) for f in OVERRIDE_FIELDS}
        overrides = RateOverrides(**values) if any(v is not None for v in values.values()) else None
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.lock_tenant(conn, partner_id, tenant_id):
                raise Problem(404, "no such tenant", code="not_found")
            if body.profile_id is not None:
                if body.profile_id not in await store.live_ids(conn, partner_id):
                    raise Problem(422, "profile_id: no such billing profile", field="profile_id")
                pricing = await store.tenant_pricing(conn, tenant_id)
                assert pricing is not None  # locked above
                current, _ = pricing.at(now)
                # none yet: from the start of the current period (whose calls keep their price)
                when = pricing.period(now).start if current is None else pricing.period(now).end
                if current is not None and current.terms.profile_id == body.profile_id:
                    await store.schedule(conn, tenant_id, current.since, body.profile_id, now)
                else:
                    await store.schedule(conn, tenant_id, when, body.profile_id, now)
            await store.put_overrides(conn, tenant_id, overrides)
            view = await self._assignment(conn, partner_id, tenant_id)
            await audit.record(conn, action="update", resource="billing_profile_assignment",
                               resource_id=tenant_id, partner_id=partner_id, tenant_id=tenant_id, after=view)
        log.info("profiles.assigned", tenant_id=tenant_id, profile_id=body.profile_id,
                 next_effective_from=view.next_effective_from, overrides=overrides is not None)
        if self.pricing_changed is not None:
            self.pricing_changed.send(PricingChanged(tenant_id))
        return view


def _view(row: asyncpg.Record) -> ProfileView:
    return ProfileView(id=row["id"], partner_id=row["partner_id"], builtin=row["builtin"],
                       is_default=bool(row["is_default"]), tenants=int(row["tenants"]),
                       created_at=row["created_at"], updated_at=row["updated_at"],
                       model=PricingModel(row["model"]),
                       **{f: row[f] for f in store.BODY_FIELDS if f != "model"})
