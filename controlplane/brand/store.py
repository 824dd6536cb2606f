"""SQL of the partner's company, brand, logo and notification preferences.

A partner without a partner_brand row has every default; ``null`` columns mean "the
default": company name = the partner's name, brand name = company name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import asyncpg

from controlplane.brand.models import Brand, Company, Contact, LogoInfo, Notifications
from controlplane.db.connection import Connection, Executor

# API field -> column, for the patches services write.
COLUMNS: Mapping[str, str] = {
    "company_name": "company_name", "billing_email": "billing_email", "brand_name": "brand_name",
    "primary_color": "primary_color", "from_email": "from_email", "support_email": "support_email",
    "statement_descriptor": "statement_descriptor",
    "new_tenant_signups": "notify_new_tenant_signups", "usage_alerts": "notify_usage_alerts",
    "monthly_reports": "notify_monthly_reports", "system_updates": "notify_system_updates",
}
# The defaults of the toggles when a column is reset with null (as in the migration).
TOGGLE_DEFAULTS: Mapping[str, bool] = {"new_tenant_signups": False, "usage_alerts": True,
                                      "monthly_reports": True, "system_updates": True}

_SELECT = """
SELECT p.id, p.name, b.company_name, b.billing_email, b.brand_name, b.primary_color, b.from_email,
       b.support_email, b.statement_descriptor,
       coalesce(b.notify_new_tenant_signups, false) AS new_tenant_signups,
       coalesce(b.notify_usage_alerts, true) AS usage_alerts,
       coalesce(b.notify_monthly_reports, true) AS monthly_reports,
       coalesce(b.notify_system_updates, true) AS system_updates,
       l.content_type AS logo_type, octet_length(l.data) AS logo_size, l.sha256 AS logo_sha256,
       l.updated_at AS logo_updated_at
FROM partners p
LEFT JOIN partner_brand b ON b.partner_id = p.id
LEFT JOIN partner_logos l ON l.partner_id = p.id
WHERE p.id = $1"""


async def _row(conn: Executor, partner_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_SELECT, partner_id)
    return row


def _company_name(row: asyncpg.Record) -> str:
    return str(row["company_name"] or row["name"])


def _company(row: asyncpg.Record) -> Company:
    return Company(company_name=_company_name(row), billing_email=row["billing_email"])


def _brand(row: asyncpg.Record) -> Brand:
    logo = None if row["logo_type"] is None else LogoInfo(
        content_type=row["logo_type"], size_bytes=row["logo_size"], sha256=row["logo_sha256"],
        updated_at=row["logo_updated_at"])
    return Brand(brand_name=row["brand_name"] or _company_name(row), primary_color=row["primary_color"],
                 from_email=row["from_email"], support_email=row["support_email"],
                 statement_descriptor=row["statement_descriptor"], logo=logo)


def _notifications(row: asyncpg.Record) -> Notifications:
    return Notifications(new_tenant_signups=row["new_tenant_signups"], usage_alerts=row["usage_alerts"],
                         monthly_reports=row["monthly_reports"], system_updates=row["system_updates"])


async def company(conn: Executor, partner_id: str) -> Company | None:
    row = await _row(conn, partner_id)
    return None if row is None else _company(row)


async def brand(conn: Executor, partner_id: str) -> Brand | None:
    row = await _row(conn, partner_id)
    return None if row is None else _brand(row)


async def notifications(conn: Executor, partner_id: str) -> Notifications | None:
    row = await _row(conn, partner_id)
    return None if row is None else _notifications(row)


async def partner_contact(conn: Executor, partner_id: str) -> Contact | None:
    """Where a partner's mails go and how they are branded; None: no such partner."""
    row = await _row(conn, partner_id)
    if row is None:
        return None
    shown = _brand(row)
    return Contact(partner_id=partner_id, company_name=_company_name(row), billing_email=row["billing_email"],
                   brand_name=shown.brand_name, from_email=row["from_email"], support_email=row["support_email"],
                   primary_color=row["primary_color"], logo_type=row["logo_type"],
                   notifications=_notifications(row))


async def update(conn: Connection, partner_id: str, values: Mapping[str, object]) -> None:
    """Set the given fields (API names; None resets to the default) on the partner's row."""
    if not values:
        await conn.execute("INSERT INTO partner_brand (partner_id) VALUES ($1) ON CONFLICT DO NOTHING", partner_id)
        return
    names = list(values)
    columns = [COLUMNS[n] for n in names]
    params = [TOGGLE_DEFAULTS[n] if values[n] is None and n in TOGGLE_DEFAULTS else values[n] for n in names]
    placeholders = ", ".join(f"${i + 2}" for i in range(len(names)))
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    await conn.execute(
        f"""INSERT INTO partner_brand (partner_id, {', '.join(columns)}) VALUES ($1, {placeholders})
            ON CONFLICT (partner_id) DO UPDATE SET {assignments}, updated_at = now()""",
        partner_id, *params)


async def logo(conn: Executor, partner_id: str) -> tuple[str, bytes, str] | None:
    """(content type, bytes, sha256) of the partner's logo; None when it has none."""
    row = await conn.fetchrow("SELECT content_type, data, sha256 FROM partner_logos WHERE partner_id = $1",
                              partner_id)
    return None if row is None else (row["content_type"], bytes(row["data"]), row["sha256"])


async def put_logo(conn: Connection, partner_id: str, content_type: str, data: bytes) -> None:
    await conn.execute(
        """INSERT INTO partner_logos (partner_id, content_type, data, sha256) VALUES ($1, $2, $3, $4)
           ON CONFLICT (partner_id) DO UPDATE SET content_type = EXCLUDED.content_type, data = EXCLUDED.data,
                  sha256 = EXCLUDED.sha256, updated_at = now()""",
        partner_id, content_type, data, hashlib.sha256(data).hexdigest())


async def delete_logo(conn: Connection, partner_id: str) -> bool:
    status: str = await conn.execute("DELETE FROM partner_logos WHERE partner_id = $1", partner_id)
    return status != "DELETE 0"
