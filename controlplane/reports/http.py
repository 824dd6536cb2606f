"""HTTP routes of the reports (documented in openapi.yaml): each view as JSON and as streaming CSV
with the same period filter, the partner's report settings, the platform's view across partners."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from controlplane.http.body import json_response, read_body
from controlplane.http.caller import partner_id
from controlplane.http.exports import stream_csv
from controlplane.http.problems import Problem
from controlplane.reports.models import (PartnerRow, SettingsBody, TenantMargin, TenantRevenue, TenantRisk,
                                         TrendMonth, UsageLine)
from controlplane.reports.services import ReportServices
from controlplane.shared.problems import FieldError

report_services = web.AppKey("report_services", ReportServices)
PERIOD = ("period", "from", "to")
ALLOWED: dict[str, tuple[str, ...]] = {
    "revenue": PERIOD, "usage": PERIOD, "margin": PERIOD, "tenants": (*PERIOD, "sort", "order"),
    "trends": ("until",), "churn-risk": (), "platform": PERIOD}


def _query(request: web.Request, view: str) -> dict[str, str]:
    """The query, each name at most once and known to the view (422 naming every one at fault)."""
    allowed = ALLOWED[view]
    errors = [FieldError(k, f"{k}: not a parameter of this report (known: {', '.join(allowed) or 'none'})")
              for k in dict.fromkeys(request.query) if k not in allowed]
    errors += [FieldError(k, f"{k}: given more than once") for k in dict.fromkeys(request.query)
               if k in allowed and len(request.query.getall(k)) > 1]
    if errors:
        raise Problem(422, "; ".join(e.message for e in errors), errors=errors)
    return {k: request.query[k] for k in request.query}


Clock = Callable[[], datetime]
# The clock seam: tests set a fixed "now" (periods end today, partner-local).
report_clock: web.AppKey[Clock] = web.AppKey("report_clock")


def _now(request: web.Request) -> datetime:
    clock = request.app.get(report_clock)
    return clock() if clock is not None else datetime.now(UTC)


Compute = Callable[[ReportServices, str | None, dict[str, str], datetime], Awaitable[Any]]


async def _revenue(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    assert p is not None
    return await s.revenue(p, q, now)


async def _usage(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    assert p is not None
    return await s.usage(p, q, now)


async def _trends(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    assert p is not None
    return await s.trends(p, q.get("until"), now)


async def _tenants(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    assert p is not None
    return await s.tenants(p, q, now)


async def _margin(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    assert p is not None
    return await s.margin(p, q, now)


async def _churn(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    assert p is not None
    return await s.churn_risk(p, now)


async def _platform(s: ReportServices, p: str | None, q: dict[str, str], now: datetime) -> Any:
    return await s.platform(q, now)


VIEWS: dict[str, Compute] = {"revenue": _revenue, "usage": _usage, "trends": _trends, "tenants": _tenants,
                             "margin": _margin, "churn-risk": _churn, "platform": _platform}


def _flat(record: msgspec.Struct, prefix: str = "") -> list[tuple[str, object]]:
    """A record's scalar fields as (name, value), nested records flattened with a dotted prefix."""
    out: list[tuple[str, object]] = []
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if isinstance(value, msgspec.Struct):
            out += _flat(value, f"{prefix}{name}.")
        elif not isinstance(value, list):
            out.append((f"{prefix}{name}", value))
    return out


def table(view: str, report: Any) -> tuple[list[str], list[Sequence[object]]]:
    """The CSV of a view: one row per line of its list (tenants, months, lines, partners), or one
    row per figure (revenue)."""
    rows_of: dict[str, tuple[str, type[msgspec.Struct]]] = {
        "usage": ("lines", UsageLine), "trends": ("months", TrendMonth), "tenants": ("tenants", TenantRevenue),
        "margin": ("tenants", TenantMargin), "churn-risk": ("tenants", TenantRisk), "platform": ("partners", PartnerRow)}
    if view not in rows_of:
        return ["figure", "value"], [list(pair) for pair in _flat(report)]
    attribute, kind = rows_of[view]
    items = getattr(report, attribute)
    header = [n for n in kind.__struct_fields__ if n != "reasons"]  # these rows hold no nested record
    if view == "churn-risk":
        return [*header, "reasons"], [[v for _, v in _flat(i)] + ["; ".join(r.detail for r in i.reasons)]
                                      for i in items]
    return header, [[v for _, v in _flat(i)] for i in items]


def _json(view: str, platform: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        pid = None if platform else partner_id(request)
        report = await VIEWS[view](request.app[report_services], pid, _query(request, view), _now(request))
        return json_response(report)

    return handler


def _csv(view: str, platform: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        pid = None if platform else partner_id(request)
        report = await VIEWS[view](request.app[report_services], pid, _query(request, view), _now(request))
        header, rows = table(view, report)

        async def stream() -> AsyncGenerator[Sequence[object], None]:
            for row in rows:
                yield row

        name = f"report-{view}" if pid is None else f"report-{view}-{pid}"
        return await stream_csv(request, name, header, stream())

    return handler


async def get_settings(request: web.Request) -> web.Response:
    return json_response(await request.app[report_services].settings(partner_id(request)))


async def put_settings(request: web.Request) -> web.Response:
    body = await read_body(request, SettingsBody)
    return json_response(await request.app[report_services].put_settings(partner_id(request), body))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/reports/settings", get_settings)
    app.router.add_put("/v1/reports/settings", put_settings)
    for view in ("revenue", "usage", "trends", "tenants", "margin", "churn-risk"):
        app.router.add_get(f"/v1/reports/{view}", _json(view))
        app.router.add_get(f"/v1/reports/{view}/export", _csv(view))
    app.router.add_get("/v1/platform/reports/overview", _json("platform", platform=True))
    app.router.add_get("/v1/platform/reports/overview/export", _csv("platform", platform=True))
