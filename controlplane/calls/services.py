"""What the calls RPC decides: filters, scoping to the caller's partner, usage, decks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import msgspec

from cdr_ingest.rates import load_deck_csv
from cdr_ingest.records import CallRecord
from controlplane.calls import store
from controlplane.calls.models import CallView, RateDeckView, UsageLine, UsageSummary
from controlplane.calls.recorder import CallRecorder
from controlplane.profiles import store as profiles_store
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
            pricing = await profiles_store.tenant_pricing(conn, tenant_id)
            if pricing is None or pricing.partner_id != partner_id:
                raise Problem(404, "no such tenant", code="not_found")
            cycle = pricing.period(at or datetime.now(UTC)).key
            rows = await store.usage(conn, tenant_id, cycle)
        lines = [UsageLine(call_class=r["call_class"], calls=r["calls"], answered_s=r["answered_s"],
                           billable_s=r["billable_s"], minutes=-(-r["billable_s"] // 60),
                           retail_micros=r["retail_micros"], wholesale_micros=r["wholesale_micros"])
                 for r in rows]
        return UsageSummary(tenant_id=tenant_id, cycle_start=cycle, lines=lines,
                            calls=sum(x.calls for x in lines), billable_s=sum(x.billable_s for x in lines),
                            retail_micros=sum(x.retail_micros for x in lines),
                            wholesale_micros=sum(x.wholesale_micros for x in lines))

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


def _view(record: CallRecord) -> CallView:
    return CallView(**msgspec.structs.asdict(record))
