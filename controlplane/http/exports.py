"""CSV exports: the cell guard every exporter uses, and the budget they share.

An export streams for as long as its client reads, and may hold a database connection
all that time (the calls export reads a server-side cursor). Ten slow clients would
otherwise take the whole pool from the call recorder and admission; so exports get a
few slots of their own (beyond them: 503 with Retry-After, before anything is read)
and a deadline (past it the stream is cut, without its final chunk, so the client sees
a broken transfer rather than a short file that looks complete).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import structlog
from aiohttp import web

from controlplane.http.middleware import REQUEST_ID_HEADER, request_id_key
from controlplane.http.problems import Problem

FLUSH_BYTES = 64 * 1024
RETRY_AFTER_SECONDS = 5
DEFAULT_SLOTS = 2
DEFAULT_SECONDS = 300.0
log = structlog.get_logger(__name__)


def csv_cell(value: object) -> str:
    """One CSV cell as text, never a formula.

    Spreadsheets run a cell starting with = + - @ (or a tab / carriage return before
    one) as a formula (CSV injection, OWASP): such a cell gets a leading apostrophe.
    A phone number (+ or - then digits only) is data and stays as it is.
    """
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        value = " ".join(map(str, value))
    text = str(value)
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not text[1:].isdigit()):
        return "'" + text
    return text


@dataclass
class ExportBudget:
    """How many exports may run at once, and for how long each."""

    slots: int = DEFAULT_SLOTS
    seconds: float = DEFAULT_SECONDS
    running: int = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self.running >= self.slots:
            raise Problem(503, f"{self.slots} exports are already running; retry shortly",
                          code="exports_busy",
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


export_budget = web.AppKey("export_budget", ExportBudget)


async def stream_csv(request: web.Request, filename: str, header: Sequence[str],
                     rows: AsyncGenerator[Sequence[object], None]) -> web.StreamResponse:
    """Stream ``rows`` (closed whatever happens) as CSV, within the app's export budget."""
    budget = request.app.get(export_budget) or ExportBudget()
    async with contextlib.aclosing(rows):
        with budget.slot():
            response = web.StreamResponse(headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{filename}.csv"',
                # sent with the headers here: the middleware's copy would come too late
                REQUEST_ID_HEADER: request.get(request_id_key, "")})
            try:
                async with asyncio.timeout(budget.seconds):
                    # The first row is read before the headers go out: a failing query is a problem+json.
                    first = await anext(rows, None)
                    await response.prepare(request)
                    await _write(response, header, first, rows)
                    await response.write_eof()  # may wait on the client too: inside the deadline
            except TimeoutError:
                if not response.prepared:
                    raise Problem(503, f"the export did not start within {budget.seconds:g} s",
                                  code="export_timeout",
                                  headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
                log.warning("export.cut", path=request.path, seconds=budget.seconds)
                if request.transport is not None:
                    request.transport.close()
    return response


async def _write(response: web.StreamResponse, header: Sequence[str], first: Sequence[object] | None,
                 rows: AsyncIterator[Sequence[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    if first is not None:
        writer.writerow([csv_cell(v) for v in first])
        async for row in rows:
            writer.writerow([csv_cell(v) for v in row])
            if buffer.tell() > FLUSH_BYTES:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode())
