"""The dispute evidence of an invoice as one zip. Pure: records in, bytes out.

What a partner sends a card network or a tenant who disputes an invoice: the invoice as
recorded (``invoice.json``, with the usage behind its minute lines summed per call class),
the PDF the tenant received, every call record behind the usage lines (``calls.csv``) and a
``manifest.json`` with each file's SHA-256, so a copy can be checked against the original.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from cdr_ingest.records import CallRecord
from controlplane.invoice_delivery.compose import Billed
from controlplane.invoices.models import Invoice

CALL_COLUMNS: tuple[str, ...] = tuple(CallRecord.__struct_fields__)


class ClassUsage(msgspec.Struct, frozen=True):
    call_class: str
    calls: int
    billable_seconds: int
    retail_micros: int


class FileEntry(msgspec.Struct, frozen=True):
    name: str
    bytes: int
    sha256: str


class InvoiceRecord(msgspec.Struct, frozen=True):
    """``invoice.json``."""

    invoice: Invoice
    tenant: Billed
    issuer: str
    usage: list[ClassUsage]
    calls: int
    generated_at: datetime


class Manifest(msgspec.Struct, frozen=True):
    invoice_id: str
    number: str | None
    generated_at: datetime
    files: list[FileEntry]


@dataclass(frozen=True)
class Evidence:
    invoice: Invoice
    tenant: Billed
    issuer: str
    pdf_name: str
    pdf: bytes
    calls: Sequence[CallRecord]  # the tenant's billable calls of the period, oldest first
    generated_at: datetime


def usage(calls: Sequence[CallRecord]) -> list[ClassUsage]:
    """Billable seconds per call class: what the invoice's minute lines were computed from."""
    sums: dict[str, tuple[int, int, int]] = {}
    for c in calls:
        n, seconds, retail = sums.get(c.call_class, (0, 0, 0))
        sums[c.call_class] = (n + 1, seconds + c.billable_s, retail + (c.retail_micros or 0))
    return [ClassUsage(call_class=k, calls=v[0], billable_seconds=v[1], retail_micros=v[2])
            for k, v in sorted(sums.items())]


def calls_csv(calls: Sequence[CallRecord], cell: Callable[[object], str]) -> bytes:
    """``cell`` is the exports' guard (controlplane.http.exports.csv_cell): never a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CALL_COLUMNS)
    for c in calls:
        writer.writerow([cell(getattr(c, name)) for name in CALL_COLUMNS])
    return out.getvalue().encode()


def pack(e: Evidence, cell: Callable[[object], str]) -> bytes:
    record = InvoiceRecord(invoice=e.invoice, tenant=e.tenant, issuer=e.issuer, usage=usage(e.calls),
                           calls=len(e.calls), generated_at=e.generated_at)
    files = [("invoice.json", msgspec.json.format(msgspec.json.encode(record))),
             (e.pdf_name, e.pdf),
             ("calls.csv", calls_csv(e.calls, cell))]
    manifest = Manifest(invoice_id=e.invoice.id, number=e.invoice.number, generated_at=e.generated_at,
                        files=[FileEntry(name, len(data), hashlib.sha256(data).hexdigest()) for name, data in files])
    files.append(("manifest.json", msgspec.json.format(msgspec.json.encode(manifest))))
    stamp = e.generated_at.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
