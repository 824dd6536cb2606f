"""The API-key scopes: what a key may be granted (apikeys) and what a route requires (http.access)."""

from __future__ import annotations

RESOURCES = ("tenants", "phone_numbers", "extensions", "call_flows", "queues", "voicemail", "calls",
             "billing", "webhooks", "provisioning", "account")
SCOPES = tuple(f"{r}:{level}" for r in RESOURCES for level in ("read", "write"))
