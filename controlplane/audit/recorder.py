"""``record()``: one audit entry, in the caller's transaction, with the request's actor."""

from __future__ import annotations

import re
import secrets
from typing import Any

import msgspec

from controlplane.audit import store
from controlplane.shared.actor import current_actor

REDACTED = "[redacted]"
# Field names whose values never reach the log, whatever the resource.
_SECRET = re.compile(r"(secret|password|passwd|token|hash|ha1|^key$|plaintext)", re.IGNORECASE)
# Bookkeeping that changes on every write and says nothing about the change.
_NOISE = frozenset({"updated_at", "extension_count", "did_count", "last_used_at"})


def _plain(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    plain = msgspec.to_builtins(value)
    return plain if isinstance(plain, dict) else {"value": plain}


def changes(before: object, after: object) -> dict[str, dict[str, Any]]:
    """Changed fields as {field: {"before": x, "after": y}}, secrets redacted."""
    old, new = _plain(before), _plain(after)
    diff: dict[str, dict[str, Any]] = {}
    for name in sorted(old.keys() | new.keys()):
        if name in _NOISE or old.get(name) == new.get(name):
            continue
        if _SECRET.search(name):
            diff[name] = {"before": REDACTED if name in old else None, "after": REDACTED if name in new else None}
        else:
            diff[name] = {"before": old.get(name), "after": new.get(name)}
    return diff


async def record(conn: store.Conn, *, action: str, resource: str, resource_id: str,
                 partner_id: str | None = None, tenant_id: str | None = None,
                 before: object = None, after: object = None) -> str:
    """Write one entry; call it inside the transaction of the change it describes."""
    actor = current_actor()
    entry = store.Entry(
        id=f"aud_{secrets.token_hex(8)}", partner_id=partner_id or actor.partner_id, tenant_id=tenant_id,
        actor_type=actor.actor_type, api_key_id=actor.api_key_id, acting_user_id=actor.user_id, action=action,
        resource=resource, resource_id=resource_id, changes=changes(before, after),
        request_id=actor.request_id)
    await store.insert(conn, entry)
    actor.recorded += 1
    return entry.id
