"""The capabilities the daemon runs, in install order (the one place that names them)."""

from __future__ import annotations

from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.calls.plugin import PLUGIN as CALLS
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.limits.plugin import PLUGIN as LIMITS
from controlplane.numbers.plugin import PLUGIN as NUMBERS
from controlplane.plugins import Plugin
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.webhooks.plugin import PLUGIN as WEBHOOKS

PLUGINS: list[Plugin] = [TENANTS, EVENTS, WEBHOOKS, NUMBERS, APIKEYS, AUDIT, CALLS, LIMITS]
