"""Tenants and DIDs -> ``extensions_tenants.conf`` (Jinja2 templates).

The templates in ``dialplan_templates/`` only ever see whitelisted values
(provisioning.validate) and this module's view objects; ordering is by
prefix, number and DID so the same state renders the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from importlib.resources import files
from types import SimpleNamespace

import jinja2

from cdr_ingest.dialing import FORMS, DialForm
from e911.routing import EMERGENCY_TRUNK, RELAY_TRUNK, EmergencyDid
from e911.routing import plan as emergency_plan
from provisioning import names
from provisioning.access import CAUSE_CALL_REJECTED, call_access
from provisioning.destinations import Destination, DestinationKind, flows_context, goto_args
from provisioning.model import DidState, DidStatus, PartnerStatus, ProvisioningState, TenantState

# Package data (provisioning/templates links to dialplan_templates/): present in an installed wheel.
TEMPLATES = files("provisioning") / "templates"
# Seconds a call waits for the admission server (FastAGI) before the fail policy applies.
ADMISSION_TIMEOUT_S = 2
_NAMES = SimpleNamespace(**{k: v for k, v in vars(names).items() if k.isupper()})


class AdmissionStep(StrEnum):
    """Whether billable calls pass admission (controlplane/limits), and what happens when
    the admission server cannot answer (or its astdb address is missing): rendered into
    the dialplan from config, never read from astdb."""

    OFF = "off"  # limits.enabled false: no admission step at all
    FAIL_CLOSED = "closed"  # outbound refused with 503 (cause 34)
    FAIL_OPEN = "open"  # outbound goes on

    @classmethod
    def of(cls, enabled: bool, fail_open: bool) -> AdmissionStep:
        """From config ``limits.enabled`` and ``limits.fail_open``."""
        if not enabled:
            return cls.OFF
        return cls.FAIL_OPEN if fail_open else cls.FAIL_CLOSED


@dataclass(frozen=True, slots=True)
class DialFormView:
    """One shape of the dialled-number rule: its pattern and the E.164 number it becomes."""

    pattern: str
    target: str


def _dial_form_view(form: DialForm) -> DialFormView:
    exten = f"${{EXTEN:{form.strip}}}" if form.strip else "${EXTEN}"
    return DialFormView(form.pattern, form.prepend + exten)


# Canonical E.164 shapes first: the order of the rendered lines (Asterisk sorts patterns itself).
DIAL_FORMS = tuple(_dial_form_view(f) for f in sorted(FORMS, key=lambda f: not f.canonical))


@dataclass(frozen=True, slots=True)
class ExtensionView:
    number: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class TenantDidView:
    number: str
    extension: str | None
    flows_goto: str = ""  # <prefix>-flows,did-<digits>,1: where the DID's route is decided


@dataclass(frozen=True, slots=True)
class CarrierDidView:
    number: str
    goto: str


@dataclass(frozen=True, slots=True)
class CallerIdView:
    """An extension's outbound identity: its DID and that DID's effective CNAM."""

    endpoint: str
    label: str
    number: str
    cnam: str | None


@dataclass(frozen=True, slots=True)
class EmergencyView:
    """911/933: the tenant-wide registered DID and the extensions with one of their own."""

    context: str
    default_cid: str
    by_endpoint: tuple[tuple[str, str], ...]
    trunk: str = EMERGENCY_TRUNK
    relay: str = RELAY_TRUNK
    # 9911 / 9933: a dial-9 habit still reaches emergency (unless an extension owns it).
    aliases: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TenantView:
    id: str
    prefix: str
    status: str
    outbound_allowed: bool  # provisioning.access: its phones call (emergency aside)
    inbound_allowed: bool  # its DIDs reach it
    cnam: str | None
    internal: str
    outbound: str
    dial: str
    inbound: str
    features: str
    extensions: tuple[ExtensionView, ...]
    dids: tuple[TenantDidView, ...]
    emergency: EmergencyView | None = None
    caller_ids: tuple[CallerIdView, ...] = ()
    flows: str = ""  # <prefix>-flows: where ext-<n> (ring, record, voicemail) is rendered


def _template_source(name: str) -> str:
    return (TEMPLATES / name).read_text("utf-8")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source), autoescape=False, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _status_label(tenant: TenantState) -> str:
    """The status the rendered header shows: the partner's too when it is what refuses calls."""
    if tenant.partner_status is PartnerStatus.SUSPENDED:
        return f"{tenant.status.value}, partner {tenant.partner_status.value}"
    return tenant.status.value


def _tenant_view(tenant: TenantState, numbers: dict[str, str], dids: list[TenantDidView]) -> TenantView:
    p = tenant.sip_prefix
    extensions = tuple(ExtensionView(n, names.endpoint_name(p, n)) for n in sorted(numbers))
    access = call_access(tenant.status, tenant.partner_status)
    return TenantView(
        id=tenant.id, prefix=p, status=_status_label(tenant), outbound_allowed=access.outbound,
        inbound_allowed=access.inbound, cnam=tenant.default_cnam, internal=names.internal_context(p),
        outbound=names.outbound_context(p),
        dial=names.dial_context(p), inbound=names.inbound_context(p), features=names.features_context(p),
        extensions=extensions, dids=tuple(sorted(dids, key=lambda d: d.number)),
        flows=flows_context(p))


def _emergency_views(tenant: TenantState, numbers: dict[str, str], dids: list[DidState]
                     ) -> tuple[EmergencyView, tuple[CallerIdView, ...]]:
    """Emergency caller ids (e911.routing) and outbound identities of one tenant's extensions."""
    p = tenant.sip_prefix
    number_of = {ext_id: n for n, ext_id in numbers.items()}
    plan = emergency_plan(EmergencyDid(d.number, d.extension_id, d.e911_registered) for d in dids)
    by_endpoint = tuple(sorted((names.endpoint_name(p, number_of[ext_id]), did)
                               for ext_id, did in plan.by_extension.items() if ext_id in number_of))
    aliases = tuple((f"9{n}", n) for n in names.EMERGENCY_NUMBERS if f"9{n}" not in numbers)
    emergency = EmergencyView(names.emergency_context(p), plan.default_cid or "", by_endpoint,
                              aliases=aliases)
    first: dict[str, DidState] = {}
    for did in sorted(dids, key=lambda d: d.number):
        if did.extension_id in number_of:
            first.setdefault(did.extension_id, did)
    caller_ids = tuple(sorted(
        (CallerIdView(names.endpoint_name(p, number_of[ext_id]), f"cid{number_of[ext_id]}", did.number,
                      did.cnam or tenant.default_cnam) for ext_id, did in first.items()),
        key=lambda c: c.endpoint))
    return emergency, caller_ids


CARRIER_TRUNK = "carrier"  # PJSIP endpoint of the carrier trunk (controlplane.calls renders it)


def render_dialplan(state: ProvisioningState, trunk: str = CARRIER_TRUNK,
                    admission: AdmissionStep = AdmissionStep.FAIL_CLOSED) -> str:
    """The whole tenant dialplan. Cancelled tenants have no contexts at all.

    ``admission`` defaults to what the config defaults to (limits enabled, fail closed).
    """
    step = "" if admission is AdmissionStep.OFF else admission.value
    tenants = {t.id: t for t in state.tenants if t.status.provisioned}
    ext_numbers: dict[str, dict[str, str]] = {tid: {} for tid in tenants}
    ext_by_id: dict[str, str] = {}
    for ext in state.extensions:
        if ext.tenant_id in tenants:
            ext_numbers[ext.tenant_id][ext.number] = ext.id
            ext_by_id[ext.id] = ext.number
    tenant_dids: dict[str, list[TenantDidView]] = {tid: [] for tid in tenants}
    active_dids: dict[str, list[DidState]] = {tid: [] for tid in tenants}
    carrier: list[CarrierDidView] = []
    for did in state.dids:
        tenant = tenants.get(did.tenant_id or "")
        if tenant is None or did.status is not DidStatus.ACTIVE:
            continue  # unassigned, released or pending: the catch-all answers "not configured"
        tenant_dids[tenant.id].append(TenantDidView(
            did.number, ext_by_id.get(did.extension_id or ""),
            goto_args(tenant.sip_prefix, Destination(DestinationKind.DID, did.number))))
        active_dids[tenant.id].append(did)
        if not call_access(tenant.status, tenant.partner_status).inbound:
            goto = f"{names.SUSPENDED},s,1"
        else:
            goto = f"{names.inbound_context(tenant.sip_prefix)},{did.number},1"
        carrier.append(CarrierDidView(did.number, goto))
    env = _environment()
    parts = [env.get_template("shared.conf.j2").render(
        names=_NAMES, dids=sorted(carrier, key=lambda d: d.number), tenant_count=len(tenants),
        did_count=len(carrier), emergency=names.EMERGENCY_NUMBERS, trunk=trunk,
        admission_timeout=ADMISSION_TIMEOUT_S, admission=step)]
    tenant_template = env.get_template("tenant.conf.j2")
    for tenant in sorted(tenants.values(), key=lambda t: t.sip_prefix):
        view = _tenant_view(tenant, ext_numbers[tenant.id], tenant_dids[tenant.id])
        emergency, caller_ids = _emergency_views(tenant, ext_numbers[tenant.id], active_dids[tenant.id])
        view = replace(view, emergency=emergency, caller_ids=caller_ids)
        parts.append(tenant_template.render(t=view, names=_NAMES, emergency=names.EMERGENCY_NUMBERS,
                                            dial_forms=DIAL_FORMS, admission=step,
                                            rejected=CAUSE_CALL_REJECTED))
    return "".join(parts)
