"""What the invoice delivery routes answer."""

from __future__ import annotations

from datetime import date

import msgspec


class Reminder(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str
    to: str
    day: date  # UTC: one reminder per invoice and day
    reference: str  # the outbox reference (mail.md)
    queued: bool  # false: today's reminder was already queued, nothing was sent again
