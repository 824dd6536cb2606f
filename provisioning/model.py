"""The database state the renderers read: plain frozen dataclasses.

Kept independent of the RPC models so that rendering can be tested and
benchmarked from synthetic data without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PartnerStatus(StrEnum):
    """A partner's platform account (seed 003 "Trial -> Active"): TRIAL for 14 days, ACTIVE once
    activated with a card, SUSPENDED when a trial ends unactivated (activation restores it)."""

    TRIAL = "TRIAL"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class TenantStatus(StrEnum):
    TRIAL = "TRIAL"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CANCELLED = "CANCELLED"

    @property
    def provisioned(self) -> bool:
        """Whether the tenant's endpoints exist in Asterisk (CANCELLED: removed)."""
        return self is not TenantStatus.CANCELLED


class DidStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PENDING = "PENDING"
    RELEASED = "RELEASED"


@dataclass(frozen=True, slots=True)
class TenantState:
    id: str
    sip_prefix: str
    status: TenantStatus
    default_cnam: str | None = None
    # Its partner's platform account: a SUSPENDED partner's tenants render like suspended ones.
    partner_status: PartnerStatus = PartnerStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class ExtensionState:
    id: str
    tenant_id: str
    number: str
    display_name: str
    sip_ha1: str
    voicemail_enabled: bool = False


@dataclass(frozen=True, slots=True)
class DidState:
    number: str
    tenant_id: str | None
    extension_id: str | None
    status: DidStatus = DidStatus.ACTIVE
    cnam: str | None = None
    # E911: the address of this number is registered with the 911 provider.
    e911_registered: bool = False


@dataclass(frozen=True, slots=True)
class ProvisioningState:
    """Everything that decides what Asterisk must contain."""

    tenants: tuple[TenantState, ...] = ()
    extensions: tuple[ExtensionState, ...] = ()
    dids: tuple[DidState, ...] = ()

    def tenant_map(self) -> dict[str, TenantState]:
        return {t.id: t for t in self.tenants}

    def extensions_by_tenant(self) -> dict[str, list[ExtensionState]]:
        grouped: dict[str, list[ExtensionState]] = {}
        for ext in self.extensions:
            grouped.setdefault(ext.tenant_id, []).append(ext)
        return grouped
