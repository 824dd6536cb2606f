"""SQL of the email outbox: enqueue (in the caller's transaction), claim with a lease, record.

Every comparison with "now" uses ``now() + offset`` (the clock seam, as in the webhooks
worker): the schedule lives in the database, so it survives restarts and tests move
time forward without sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from controlplane.brand import store as brand_store
from controlplane.brand.models import Contact
from controlplane.brand.validation import email_problem
from controlplane.db.connection import Connection, Executor
from controlplane.mail import schedule
from controlplane.mail.render import Attachment, BrandView, render

__all__ = ["Attachment", "Job", "NotInTransaction", "brand_view", "claim", "enqueue", "record_failed",
           "record_sent"]

log = structlog.get_logger(__name__)
NOTIFY_CHANNEL = "controlplane_mail"
PLATFORM_NAME = "Control Plane"  # the display name of mails that concern no partner


class NotInTransaction(RuntimeError):
    """enqueue() outside a transaction: the mail could outlive a rolled-back change."""


@dataclass(frozen=True)
class Job:
    """A claimed mail, as the worker sends it."""

    id: int
    reference: str
    to_address: str
    from_name: str
    from_email: str | None
    message: bytes
    attempts: int
    max_attempts: int
    claimed_at: datetime


async def brand_view(conn: Executor, partner_id: str | None) -> tuple[BrandView, Contact | None]:
    """The partner's brand as templates see it (its PNG/JPEG logo inline)."""
    contact = None if partner_id is None else await brand_store.partner_contact(conn, partner_id)
    if contact is None:
        return BrandView(name=PLATFORM_NAME), None
    logo = None
    if contact.logo_type in ("image/png", "image/jpeg"):
        found = await brand_store.logo(conn, contact.partner_id)
        if found is not None:
            ext = "png" if found[0] == "image/png" else "jpg"
            logo = Attachment(f"logo.{ext}", found[0], found[1])
    view = BrandView(name=contact.brand_name, color=contact.primary_color or BrandView.color,
                     support_email=contact.support_email, company_name=contact.company_name, logo=logo)
    return view, contact


async def enqueue(conn: Connection, *, partner_id: str | None, to: str, template: str,
                  values: Mapping[str, object], reference: str,
                  attachments: Sequence[Attachment] = (), max_attempts: int = schedule.MAX_ATTEMPTS) -> bool:
    """Render a mail now, with the partner's brand, and queue it in the caller's transaction.

    False when ``reference`` was queued before (nothing is rendered or changed). The mail
    is sent after commit by the worker, from the brand's from-email when set, else from
    config ``mail.from_address``, with the brand name as display name. Raises ValueError
    for an address that cannot be one, render.TemplateMissing for an unknown template.
    """
    if not conn.is_in_transaction():
        raise NotInTransaction(f"enqueue({reference!r}) must run inside the transaction of its change")
    problem = email_problem(to)
    if problem is not None:
        raise ValueError(f"mail to {to!r}: {problem}")
    if await conn.fetchval("SELECT 1 FROM mail_outbox WHERE reference = $1", reference):
        return False
    brand, contact = await brand_view(conn, partner_id)
    rendered = render(template, values, brand=brand, to=to, reference=reference, attachments=attachments)
    inserted = await conn.fetchval(
        """INSERT INTO mail_outbox (reference, partner_id, template, to_address, from_name, from_email, subject,
                                    message_id, message, max_attempts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (reference) DO NOTHING RETURNING id""",
        reference, partner_id, template, to, brand.name, contact.from_email if contact else None,
        rendered.subject, rendered.message_id, rendered.message, max_attempts)
    return inserted is not None


_CLAIM = """
WITH clock AS (SELECT now() + $1::interval AS t),
picked AS (
    SELECT m.id FROM mail_outbox m, clock
    WHERE m.status = 'PENDING' AND m.due_at <= clock.t
      AND (m.lease_until IS NULL OR m.lease_until <= clock.t) AND NOT m.id = ANY($4::bigint[])
    ORDER BY m.due_at, m.id LIMIT $2
    FOR UPDATE OF m SKIP LOCKED)
UPDATE mail_outbox m SET lease_until = clock.t + $3::interval, lease_owner = $5
FROM picked, clock WHERE m.id = picked.id
RETURNING m.id, m.reference, m.to_address, m.from_name, m.from_email, m.message, m.attempts, m.max_attempts,
          clock.t AS claimed_at"""


async def claim(conn: Executor, *, owner: str, offset: timedelta, limit: int, lease: timedelta,
                exclude: Sequence[int] = ()) -> list[Job]:
    """Lease up to ``limit`` due mails (SKIP LOCKED: two workers never claim the same one)."""
    rows = await conn.fetch(_CLAIM, offset, limit, lease, list(exclude), owner)
    return [Job(id=r["id"], reference=r["reference"], to_address=r["to_address"], from_name=r["from_name"],
                from_email=r["from_email"], message=bytes(r["message"]), attempts=r["attempts"],
                max_attempts=r["max_attempts"], claimed_at=r["claimed_at"]) for r in rows]


async def record_sent(conn: Executor, job: Job, *, owner: str, offset: timedelta) -> bool:
    """SENT, if the lease is still ours (else another worker has it: it may send it again)."""
    status: str = await conn.execute(
        """UPDATE mail_outbox SET status = 'SENT', attempts = attempts + 1, sent_at = now() + $3::interval,
                  lease_until = NULL, lease_owner = NULL, last_error = NULL
           WHERE id = $1 AND lease_owner = $2 AND status = 'PENDING'""", job.id, owner, offset)
    return status != "UPDATE 0"


async def record_failed(conn: Executor, job: Job, error: str, *, permanent: bool, owner: str,
                        offset: timedelta, max_attempts: int | None = None) -> str | None:
    """Count a failed attempt: due again after the backoff, or DEAD (returned) after the last
    (the mail's own limit, or ``max_attempts`` when lower: config ``mail.max_attempts``)."""
    limit = job.max_attempts if max_attempts is None else min(job.max_attempts, max_attempts)
    delay = None if permanent else schedule.retry_delay(job.attempts + 1, limit)
    status = "DEAD" if delay is None else "PENDING"
    result: str = await conn.execute(
        """UPDATE mail_outbox SET status = $3, attempts = attempts + 1, last_error = $4,
                  due_at = now() + $5::interval + make_interval(secs => $6),
                  lease_until = NULL, lease_owner = NULL
           WHERE id = $1 AND lease_owner = $2 AND status = 'PENDING'""",
        job.id, owner, status, error[:1000], offset, float(delay or 0))
    return None if result == "UPDATE 0" else status


async def queued(conn: Executor) -> int:
    """Mails waiting to be sent (the disabled-mail log line says how many)."""
    count: int = await conn.fetchval("SELECT count(*) FROM mail_outbox WHERE status = 'PENDING'")
    return count
