"""SQL of invoice delivery. It owns no table: it reads the outbox (mail's) and the tenant
invoices (invoices') by the reference this capability gives its mails, ``invoice:<id>``."""

from __future__ import annotations

from controlplane.db.connection import Executor

# Issued more than this long ago and still unmailed: the after-commit handler did not run.
GRACE = "1 minute"
# Older ones are left alone (an operator who turns delivery on is not mailing history).
HORIZON = "7 days"


async def queued(conn: Executor, reference: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM mail_outbox WHERE reference = $1", reference))


async def unmailed(conn: Executor, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT i.id FROM tenant_invoices i"
        f" WHERE i.number IS NOT NULL AND i.issued_at > now() - interval '{HORIZON}'"
        f" AND i.issued_at < now() - interval '{GRACE}'"
        " AND NOT EXISTS (SELECT 1 FROM mail_outbox m WHERE m.reference = 'invoice:' || i.id)"
        " ORDER BY i.issued_at, i.id LIMIT $1", limit)
    return [r["id"] for r in rows]
