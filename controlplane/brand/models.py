"""Records of the brand capability: what the API shows and what other capabilities read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec


class LogoInfo(msgspec.Struct, frozen=True):
    content_type: str
    size_bytes: int
    sha256: str
    updated_at: datetime


class Company(msgspec.Struct, frozen=True):
    company_name: str
    billing_email: str | None


class Brand(msgspec.Struct, frozen=True):
    brand_name: str
    primary_color: str | None
    from_email: str | None
    support_email: str | None
    statement_descriptor: str | None
    logo: LogoInfo | None


class Notifications(msgspec.Struct, frozen=True):
    new_tenant_signups: bool
    usage_alerts: bool
    monthly_reports: bool
    system_updates: bool

    def allows(self, preference: str) -> bool:
        return bool(getattr(self, preference))


@dataclass(frozen=True)
class Contact:
    """Who a partner is in mail: where its mails go and how they are signed and sent."""

    partner_id: str
    company_name: str
    billing_email: str | None
    brand_name: str
    from_email: str | None
    support_email: str | None
    primary_color: str | None
    logo_type: str | None  # the logo's content type when there is one
    notifications: Notifications
