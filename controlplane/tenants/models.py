"""The RPC's records and request bodies (msgspec Structs)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec import UNSET, UnsetType

from cdr_ingest.tiers import Tier
from provisioning.model import DidStatus, TenantStatus

__all__ = ["UNSET", "UnsetType", "DidStatus", "PartnerTier", "TenantStatus", "Tier"]

# The RPC's name (OpenAPI schema PartnerTier) for the one tier enum; not a second enum.
PartnerTier = Tier


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class PartnerCreate(_Body):
    name: str
    tier: Tier


class PartnerUpdate(_Body):
    name: str | UnsetType = UNSET
    tier: Tier | UnsetType = UNSET


class Partner(msgspec.Struct, kw_only=True):
    id: str
    name: str
    tier: Tier
    extension_count: int
    max_extensions: int | None
    created_at: datetime
    updated_at: datetime


class TenantCreate(_Body):
    name: str
    billing_email: str
    sip_prefix: str | None = None
    default_cnam: str | None | UnsetType = UNSET
    timezone: str | UnsetType = UNSET
    status: TenantStatus = TenantStatus.TRIAL


class TenantUpdate(_Body):
    name: str | UnsetType = UNSET
    billing_email: str | UnsetType = UNSET
    default_cnam: str | None | UnsetType = UNSET
    timezone: str | UnsetType = UNSET
    status: TenantStatus | UnsetType = UNSET
    # Accepted only when unchanged: the prefix names every SIP object of the tenant.
    sip_prefix: str | UnsetType = UNSET
    partner_id: str | UnsetType = UNSET
    created_at: str | UnsetType = UNSET


class Tenant(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    name: str
    sip_prefix: str
    billing_email: str
    default_cnam: str | None
    timezone: str
    status: TenantStatus
    extension_count: int
    did_count: int
    cancelled_at: datetime | None
    purge_after: datetime | None
    created_at: datetime
    updated_at: datetime


class TenantDefaults(_Body):
    timezone: str | None = None
    default_cnam: str | None = None
    # The billing profile new tenants get (controlplane/profiles); None: Pay-As-You-Go.
    billing_profile_id: str | None = None


class ExtensionCreate(_Body):
    number: str
    display_name: str
    voicemail_enabled: bool = False


class ExtensionUpdate(_Body):
    display_name: str | UnsetType = UNSET
    voicemail_enabled: bool | UnsetType = UNSET
    number: str | UnsetType = UNSET


class Extension(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    number: str
    display_name: str
    voicemail_enabled: bool
    sip_username: str
    created_at: datetime
    updated_at: datetime


class ExtensionSecrets(msgspec.Struct, kw_only=True):
    sip_password: str


class ExtensionCredentials(Extension, kw_only=True):
    """Returned at creation and on reset only (in ``secrets``): the password is never stored."""

    secrets: ExtensionSecrets


class DidCreate(_Body):
    number: str
    cnam: str | None = None


class DidUpdate(_Body):
    tenant_id: str | None | UnsetType = UNSET
    extension_id: str | None | UnsetType = UNSET
    cnam: str | None | UnsetType = UNSET


class Did(msgspec.Struct, kw_only=True):
    id: str
    partner_id: str
    number: str
    tenant_id: str | None
    extension_id: str | None
    status: DidStatus
    cnam: str | None
    created_at: datetime
    updated_at: datetime


