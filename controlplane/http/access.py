"""What each route needs: a scope per operation, checked before the handler runs.

Every secured operation of the contract has a scope: from ``x-scope`` in its plugin's
OpenAPI fragment, else from ``OPERATION_SCOPES`` below. ``portal`` marks what only the
portal's service token may do; ``platform`` what only the operator's platform token
may do, and that token may do nothing else. A route without one is refused to API
keys (fail closed) and fails tests/unit/test_openapi.py.

Tenant scope: a key restricted to some tenants reaches routes with ``{tenant_id}`` in
the path only for those tenants (404 otherwise, so others' tenants stay invisible),
and other routes only when they are ``x-tenant-aware`` (their handler filters by
``caller.tenant_scope``); partner-wide routes answer it 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from controlplane.http.caller import PARTNER_HEADER, CallerKind, caller_key, require_tenant
from controlplane.http.problems import Problem
from controlplane.shared.scopes import SCOPES as SCOPES  # re-exported: the vocabulary routes require
PORTAL = "portal"
PLATFORM = "platform"
METHODS = frozenset({"get", "put", "post", "patch", "delete"})

# Operations of plugins whose fragments predate x-scope (tenants, events, webhooks).
OPERATION_SCOPES: dict[str, str] = {
    "createPartner": PORTAL, "listPartners": PORTAL, "getPartner": PORTAL, "updatePartner": PORTAL,
    "deletePartner": PORTAL,
    "createTenant": "tenants:write", "listTenants": "tenants:read", "getTenant": "tenants:read",
    "updateTenant": "tenants:write", "deleteTenant": "tenants:write", "exportTenants": "tenants:read",
    "getTenantDefaults": "tenants:read", "putTenantDefaults": "tenants:write",
    "createExtension": "extensions:write", "listExtensions": "extensions:read", "getExtension": "extensions:read",
    "updateExtension": "extensions:write", "deleteExtension": "extensions:write",
    "resetExtensionPassword": "extensions:write",
    "createDid": PLATFORM, "listDids": "phone_numbers:read", "getDid": "phone_numbers:read",
    "updateDid": "phone_numbers:write", "deleteDid": "phone_numbers:write", "exportDids": "phone_numbers:read",
    "listEvents": "webhooks:read", "getEvent": "webhooks:read", "listEventTypes": "webhooks:read",
    "createWebhookEndpoint": "webhooks:write", "listWebhookEndpoints": "webhooks:read",
    "getWebhookEndpoint": "webhooks:read", "updateWebhookEndpoint": "webhooks:write",
    "deleteWebhookEndpoint": "webhooks:write", "enableWebhookEndpoint": "webhooks:write",
    "disableWebhookEndpoint": "webhooks:write", "rotateWebhookEndpointSecret": "webhooks:write",
    "listWebhookDeliveries": "webhooks:read", "getWebhookDelivery": "webhooks:read",
    "redeliverWebhookDelivery": "webhooks:write",
}
# Routes without {tenant_id} whose handlers filter by the key's tenant scope themselves.
TENANT_AWARE = frozenset({"listTenants", "exportTenants", "listDids", "exportDids", "getDid", "updateDid"})


@dataclass(frozen=True, slots=True)
class Access:
    operation_id: str
    scope: str | None
    tenant_aware: bool


route_access = web.AppKey("route_access", dict)


def operation_access(document: dict[str, Any]) -> dict[tuple[str, str], Access]:
    """(method, path template) -> Access for every secured operation of the contract."""
    table: dict[tuple[str, str], Access] = {}
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if method not in METHODS or op.get("security", document.get("security")) == []:
                continue
            op_id = op.get("operationId", "")
            scope = op.get("x-scope", OPERATION_SCOPES.get(op_id))
            table[(method.upper(), path)] = Access(op_id, scope, bool(op.get("x-tenant-aware", op_id in TENANT_AWARE)))
    return table


def route_template(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", resource.canonical)


def check(request: web.Request, access: Access | None) -> None:
    """Raise the 403/404 a caller earns on this route: API keys by scope and tenant scope,
    the tokens by whether the operation is the platform's."""
    caller = request[caller_key]
    platform_only = access is not None and access.scope == PLATFORM
    if caller.kind is CallerKind.PLATFORM:
        if access is not None and not platform_only:
            raise Problem(403, "the platform token reaches platform operations only; act for a partner with"
                          " the service token or the partner's API key", code="partner_operation")
        return
    if platform_only:
        raise Problem(403, "this operation is reserved to the platform operator (the platform token)",
                      code="platform_only")
    if caller.kind is CallerKind.SERVICE:
        return
    if access is None or access.scope is None or access.scope == PORTAL:
        raise Problem(403, "this operation is reserved to the portal", code="forbidden")
    if not caller.allows(access.scope):
        raise Problem(403, f"this key lacks the {access.scope} scope", code="insufficient_scope",
                      extra={"required_scope": access.scope})
    named = request.headers.get(PARTNER_HEADER)
    if named is not None and named != caller.partner_id:
        raise Problem(403, f"this key acts for its own partner only; drop {PARTNER_HEADER}",
                      code="forbidden", field=PARTNER_HEADER)
    if caller.tenant_ids is None:
        return
    tenant_id = request.match_info.get("tenant_id")
    if tenant_id is not None:
        require_tenant(request, tenant_id)
    elif not access.tenant_aware:
        raise Problem(403, "this key is restricted to some tenants; this operation is partner-wide",
                      code="tenant_scoped_key")
