"""Tenants and DIDs -> ``extensions_tenants.conf`` (Jinja2 templates).

The templates in ``dialplan_templates/`` only ever see whitelisted values
(provisioning.validate) and this module's view objects; ordering is by
prefix, number and DID so the same state renders the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import jinja2

from provisioning import names
from provisioning.model import DidStatus, ProvisioningState, TenantState, TenantStatus

TEMPLATES = Path(__file__).resolve().parent.parent / "dialplan_templates"
_NAMES = SimpleNamespace(**{k: v for k, v in vars(names).items() if k.isupper()})


@dataclass(frozen=True, slots=True)
class ExtensionView:
    number: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class TenantDidView:
    number: str
    extension: str | None


@dataclass(frozen=True, slots=True)
class CarrierDidView:
    number: str
    goto: str


@dataclass(frozen=True, slots=True)
class TenantView:
    id: str
    prefix: str
    status: str
    calls_allowed: bool
    cnam: str | None
    internal: str
    outbound: str
    inbound: str
    features: str
    extensions: tuple[ExtensionView, ...]
    dids: tuple[TenantDidView, ...]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _tenant_view(tenant: TenantState, numbers: dict[str, str], dids: list[TenantDidView]) -> TenantView:
    p = tenant.sip_prefix
    extensions = tuple(ExtensionView(n, names.endpoint_name(p, n)) for n in sorted(numbers))
    return TenantView(
        id=tenant.id, prefix=p, status=tenant.status.value, calls_allowed=tenant.status.calls_allowed,
        cnam=tenant.default_cnam, internal=names.internal_context(p), outbound=names.outbound_context(p),
        inbound=names.inbound_context(p), features=names.features_context(p),
        extensions=extensions, dids=tuple(sorted(dids, key=lambda d: d.number)))


def render_dialplan(state: ProvisioningState) -> str:
    """The whole tenant dialplan. Cancelled tenants have no contexts at all."""
    tenants = {t.id: t for t in state.tenants if t.status.provisioned}
    ext_numbers: dict[str, dict[str, str]] = {tid: {} for tid in tenants}
    ext_by_id: dict[str, str] = {}
    for ext in state.extensions:
        if ext.tenant_id in tenants:
            ext_numbers[ext.tenant_id][ext.number] = ext.id
            ext_by_id[ext.id] = ext.number
    tenant_dids: dict[str, list[TenantDidView]] = {tid: [] for tid in tenants}
    carrier: list[CarrierDidView] = []
    for did in state.dids:
        tenant = tenants.get(did.tenant_id or "")
        if tenant is None or did.status is not DidStatus.ACTIVE:
            continue  # unassigned, released or pending: the catch-all answers "not configured"
        tenant_dids[tenant.id].append(TenantDidView(did.number, ext_by_id.get(did.extension_id or "")))
        if tenant.status is TenantStatus.SUSPENDED:
            goto = f"{names.SUSPENDED},s,1"
        else:
            goto = f"{names.inbound_context(tenant.sip_prefix)},{did.number},1"
        carrier.append(CarrierDidView(did.number, goto))
    env = _environment()
    parts = [env.get_template("shared.conf.j2").render(
        names=_NAMES, dids=sorted(carrier, key=lambda d: d.number), tenant_count=len(tenants),
        did_count=len(carrier), emergency=names.EMERGENCY_NUMBERS)]
    tenant_template = env.get_template("tenant.conf.j2")
    for tenant in sorted(tenants.values(), key=lambda t: t.sip_prefix):
        view = _tenant_view(tenant, ext_numbers[tenant.id], tenant_dids[tenant.id])
        parts.append(tenant_template.render(t=view, names=_NAMES, emergency=names.EMERGENCY_NUMBERS))
    return "".join(parts)
