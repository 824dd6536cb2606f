"""HTTP routes of invoice delivery (documented in openapi.yaml): the PDF, reminders, evidence."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from controlplane.http.body import json_response
from controlplane.http.caller import partner_id, tenant_scope
from controlplane.http.exports import ExportBudget, csv_cell, export_budget
from controlplane.http.problems import Problem
from controlplane.invoice_delivery import evidence
from controlplane.invoice_delivery.services import DeliveryServices

delivery_services = web.AppKey("delivery_services", DeliveryServices)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _invoice_id(request: web.Request) -> str:
    value = request.match_info["invoice_id"]
    if not _ID.fullmatch(value):
        raise Problem(404, "no such invoice", code="not_found")
    return value


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"}


async def get_pdf(request: web.Request) -> web.Response:
    name, pdf = await request.app[delivery_services].pdf(partner_id(request), _invoice_id(request),
                                                         tenant_scope(request))
    return web.Response(body=pdf, content_type="application/pdf", headers=_attachment(name))


async def get_credit_note_pdf(request: web.Request) -> web.Response:
    value = request.match_info["credit_note_id"]
    if not _ID.fullmatch(value):
        raise Problem(404, "no such credit note", code="not_found")
    name, pdf = await request.app[delivery_services].credit_note_pdf(partner_id(request), value,
                                                                     tenant_scope(request))
    return web.Response(body=pdf, content_type="application/pdf", headers=_attachment(name))


async def send_reminder(request: web.Request) -> web.Response:
    if request.body_exists and (await request.read()).strip() not in (b"", b"{}"):
        raise Problem(422, "this request takes no body", field="body")
    reminder = await request.app[delivery_services].remind(partner_id(request), _invoice_id(request),
                                                           tenant_scope(request))
    return json_response(reminder, 202 if reminder.queued else 200)


async def get_evidence(request: web.Request) -> web.Response:
    # An export like the CSV ones: it reads every call of a period, so it takes one of their slots.
    budget = request.app.get(export_budget) or ExportBudget()
    with budget.slot():
        found = await request.app[delivery_services].evidence(partner_id(request), _invoice_id(request),
                                                              tenant_scope(request))
        archive = await asyncio.to_thread(evidence.pack, found, csv_cell)
    name = found.pdf_name.removesuffix(".pdf") + "-evidence.zip"
    return web.Response(body=archive, content_type="application/zip", headers=_attachment(name))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/invoices/{invoice_id}/pdf", get_pdf)
    app.router.add_post("/v1/invoices/{invoice_id}/reminders", send_reminder)
    app.router.add_get("/v1/invoices/{invoice_id}/evidence", get_evidence)
    app.router.add_get("/v1/credit-notes/{credit_note_id}/pdf", get_credit_note_pdf)
