"""What the calls RPC decides: filters, scoping to the caller's partner, profiles, decks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import msgspec

from cdr_ingest.pricing import BillingProfile
from cdr_ingest.rates import Rounding, load_deck_csv
from cdr_ingest.cycles import cycle_date
from cdr_ingest.records import CallRecord
from controlplane.calls import store
from controlplane.calls.models import (BillingProfileBody, BillingProfileView, CallView, RateDeckView,
                                       UsageLine, UsageSummary)
from controlplane.calls.recorder import CallRecorder
from controlplane.shared.pagination import PageRequest, encode_cursor
from controlplane.shared.problems import Problem

_MAX_DECK_BYTES = 20 * 1024 * 1024


class CallServices:
    def __init__(self, pool: asyncpg.Pool, recorder: CallRecorder | None = None) -> None:
        self.pool = pool
        self.recorder = recorder

    async def list_calls(self, f: store.CallFilter, page: PageRequest) -> tuple[list[CallView], str | None]:
        async with self.pool.acquire() as conn:
            rows = await store.list_records(conn, f, page)
        if len(rows) <= page.limit:
            return [_view(r) for r in rows], None
        rows = rows[:page.limit]
        return [_view(r) for r in rows], encode_cursor(rows[-1].started_at, rows[-1].id)

    async def get_call(self, partner_id: str, call_id: str) -> CallView:
        async with self.pool.acquire() as conn:
            record = await store.get_record(conn, partner_id, call_id)
        if record is None:
            raise Problem(404, "no such call", code="not_found")
        return _view(record)

    async def export(self, f: store.CallFilter) -> AsyncIterator[CallRecord]:
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            async for record in store.iter_records(conn, f):
                yield record

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> None:
        if await store.tenant_partner(conn, tenant_id) != partner_id:
            raise Problem(404, "no such tenant", code="not_found")

    async def usage(self, partner_id: str, tenant_id: str, at: datetime | None = None) -> UsageSummary:
        async with self.pool.acquire() as conn:
            tenant = await store.tenant_cycle(conn, tenant_id)
            if tenant is None or tenant["partner_id"] != partner_id:
                raise Problem(404, "no such tenant", code="not_found")
            cycle = cycle_date(at or datetime.now(UTC), tenant["timezone"], tenant["anchor_day"])
            rows = await store.usage(conn, tenant_id, cycle)
        lines = [UsageLine(call_class=r["call_class"], calls=r["calls"], answered_s=r["answered_s"],
                           billable_s=r["billable_s"], minutes=-(-r["billable_s"] // 60),
                           retail_micros=r["retail_micros"], wholesale_micros=r["wholesale_micros"])
                 for r in rows]
        return UsageSummary(tenant_id=tenant_id, cycle_start=cycle, lines=lines,
                            calls=sum(x.calls for x in lines), billable_s=sum(x.billable_s for x in lines),
                            retail_micros=sum(x.retail_micros for x in lines),
                            wholesale_micros=sum(x.wholesale_micros for x in lines))

    async def put_profile(self, partner_id: str, tenant_id: str, body: BillingProfileBody) -> BillingProfileView:
        if body.rounding not in {r.value for r in Rounding}:
            raise Problem(422, f"rounding must be one of {', '.join(r.value for r in Rounding)}",
                          field="rounding")
        try:  # the pure core validates: one set of rules for the RPC and for rating
            BillingProfile(tenant_id, body.per_minute_micros, body.local_per_minute_micros,
                           body.toll_free_per_minute_micros, body.international_per_minute_micros, None,
                           body.connect_fee_micros, body.min_seconds, body.increment_seconds,
                           Rounding(body.rounding), body.charge_inbound)
        except ValueError as exc:
            raise Problem(422, str(exc), field=_profile_field(str(exc))) from None
        values = (body.per_minute_micros, body.local_per_minute_micros, body.toll_free_per_minute_micros,
                  body.international_per_minute_micros, body.connect_fee_micros, body.min_seconds,
                  body.increment_seconds, body.rounding, body.charge_inbound)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.put_profile(conn, tenant_id, values)
        if self.recorder is not None:
            self.recorder.forget(tenant_id)
        return _profile_view(row)

    async def get_profile(self, partner_id: str, tenant_id: str) -> BillingProfileView:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.get_profile(conn, tenant_id)
        if row is None:
            raise Problem(404, "the tenant has no billing profile", code="not_found")
        return _profile_view(row)

    async def put_retail_deck(self, partner_id: str, csv_text: str) -> RateDeckView:
        if len(csv_text) > _MAX_DECK_BYTES:
            raise Problem(413, "rate deck larger than 20 MB")
        try:
            deck = load_deck_csv(csv_text)
        except ValueError as exc:
            raise Problem(422, str(exc), field="body") from None
        async with self.pool.acquire() as conn, conn.transaction():
            await store.put_retail_deck(conn, partner_id, csv_text, len(deck))
        return RateDeckView(partner_id=partner_id, rates=len(deck), prefixes=deck.prefix_count)


def _profile_field(message: str) -> str:
    """The body field a pure-core message names ("connect_fee must be ..." -> connect_fee_micros)."""
    name = message.split(" ", 1)[0]
    if name in BillingProfileBody.__struct_fields__:
        return name
    if f"{name}_micros" in BillingProfileBody.__struct_fields__:
        return f"{name}_micros"
    return "body"


def _profile_view(row: asyncpg.Record) -> BillingProfileView:
    return BillingProfileView(
        tenant_id=row["tenant_id"], per_minute_micros=row["per_minute"],
        local_per_minute_micros=row["local_per_minute"], toll_free_per_minute_micros=row["toll_free_per_minute"],
        international_per_minute_micros=row["international_per_minute"], connect_fee_micros=row["connect_fee"],
        min_seconds=row["min_seconds"], increment_seconds=row["increment_seconds"], rounding=row["rounding"],
        charge_inbound=row["charge_inbound"], updated_at=row["updated_at"])


def _view(record: CallRecord) -> CallView:
    return CallView(**msgspec.structs.asdict(record))
