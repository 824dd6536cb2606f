"""Extensions -> PJSIP endpoint, auth and aor (rows for sorcery realtime).

One row type per realtime table; the column names are the ones Asterisk's
sorcery queries (contrib/ast-db-manage). The same rows render as a static
``pjsip.conf`` section, used only as the full-reload baseline in the bench.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from provisioning.model import ExtensionState, ProvisioningState, TenantState
from provisioning.names import REALM, endpoint_name, internal_context, voicemail_context


@dataclass(frozen=True, slots=True, order=True)
class EndpointRow:
    id: str
    tenant_id: str
    aors: str
    auth: str
    context: str
    callerid: str
    accountcode: str
    set_var: str
    disallow: str = "all"
    allow: str = "ulaw,alaw"
    direct_media: str = "no"
    rtp_symmetric: str = "yes"
    force_rport: str = "yes"
    rewrite_contact: str = "yes"
    # Only the From user identifies a phone: an IP match must never pick a
    # tenant endpoint (all phones may sit behind one NAT).
    identify_by: str = "username"
    # Emergency and display only; the tenant's CNAM is set by the outbound dialplan.
    send_pai: str = "yes"
    # Message waiting: the extension's own box (``<number>@<prefix>-vm``) when voicemail is
    # enabled; NOTIFYs go unsolicited to the phone's contact (controlplane/voicemail).
    mailboxes: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class AuthRow:
    id: str
    tenant_id: str
    username: str
    md5_cred: str
    auth_type: str = "md5"
    realm: str = REALM


@dataclass(frozen=True, slots=True, order=True)
class AorRow:
    id: str
    tenant_id: str
    # One device per extension: a re-registration from a new address replaces the old one.
    max_contacts: int = 1
    remove_existing: str = "yes"
    qualify_frequency: int = 0
    default_expiration: int = 600


@dataclass(frozen=True, slots=True)
class PjsipObjects:
    endpoints: tuple[EndpointRow, ...]
    auths: tuple[AuthRow, ...]
    aors: tuple[AorRow, ...]


TABLES: dict[str, type] = {"ps_endpoints": EndpointRow, "ps_auths": AuthRow, "ps_aors": AorRow}


def columns(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(row_type))


def row_values(row: EndpointRow | AuthRow | AorRow) -> tuple[object, ...]:
    return astuple(row)


def render_extension(tenant: TenantState, ext: ExtensionState) -> tuple[EndpointRow, AuthRow, AorRow]:
    """The three objects of one extension, named ``<prefix>_<number>``."""
    name = endpoint_name(tenant.sip_prefix, ext.number)
    endpoint = EndpointRow(
        id=name, tenant_id=tenant.id, aors=name, auth=name,
        context=internal_context(tenant.sip_prefix),
        # display_name and number are whitelisted: no quote or angle bracket can occur.
        callerid=f'"{ext.display_name}" <{ext.number}>',
        accountcode=tenant.id,
        # The double underscore makes TENANT_ID inherited by every channel this
        # one dials, so both legs of a call carry the tenant.
        set_var=f"__TENANT_ID={tenant.id}",
        mailboxes=f"{ext.number}@{voicemail_context(tenant.sip_prefix)}" if ext.voicemail_enabled else None,
    )
    auth = AuthRow(id=name, tenant_id=tenant.id, username=name, md5_cred=ext.sip_ha1)
    return endpoint, auth, AorRow(id=name, tenant_id=tenant.id)


def render_pjsip(state: ProvisioningState) -> PjsipObjects:
    """All PJSIP objects of the state, sorted by id (deterministic)."""
    tenants = state.tenant_map()
    endpoints: list[EndpointRow] = []
    auths: list[AuthRow] = []
    aors: list[AorRow] = []
    for ext in state.extensions:
        tenant = tenants.get(ext.tenant_id)
        if tenant is None or not tenant.status.provisioned:
            continue
        endpoint, auth, aor = render_extension(tenant, ext)
        endpoints.append(endpoint)
        auths.append(auth)
        aors.append(aor)
    return PjsipObjects(tuple(sorted(endpoints)), tuple(sorted(auths)), tuple(sorted(aors)))


def render_static_conf(objects: PjsipObjects) -> str:
    """The same objects as a static pjsip.conf fragment (full-reload baseline)."""
    out: list[str] = []
    for kind, rows in (("endpoint", objects.endpoints), ("auth", objects.auths), ("aor", objects.aors)):
        for row in rows:
            out.append(f"[{row.id}]\ntype={kind}\n")
            for column in columns(type(row))[2:]:
                value = getattr(row, column)
                if value is not None:  # unset (e.g. no mailbox): Asterisk's default
                    out.append(f"{column}={value}\n")
            out.append("\n")
    return "".join(out)
