"""Which events the notifier mails to the partner, with which template, under which preference. Pure.

Mapped by name, so a type another capability registers later (``wallet.low_balance``,
``subscription.price_change_scheduled``) is mailed as soon as it is emitted; any other
type is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    template: str
    # The notification toggle (brand Notifications field) that must be on; None: always mailed.
    preference: str | None


_EXACT: dict[str, Rule] = {
    "tenant.created": Rule("notify_tenant_created", "new_tenant_signups"),
    "usage.threshold_reached": Rule("notify_usage", "usage_alerts"),
    "usage.cap_reached": Rule("notify_usage", "usage_alerts"),
    "webhook_endpoint.disabled": Rule("notify_webhook_disabled", None),
    "payment.failed": Rule("notify_payment_failed", None),
    "wallet.low_balance": Rule("notify_low_balance", None),
}
# A tenant's card declined on its invoice is not the partner's card: another text, and the
# partner hears of it under its usage alerts (it is about its customer, not its account).
_TENANT_PAYMENT_FAILED = Rule("notify_tenant_payment_failed", "usage_alerts")
_PREFIXES: dict[str, Rule] = {
    "subscription.": Rule("notify_subscription", None),
}


def rule_for(event_type: str, payer: object = None) -> Rule | None:
    """The rule of an event type (``payer``: the event's ``data.payer``); None: not mailed."""
    if event_type == "payment.failed" and payer == "tenant":
        return _TENANT_PAYMENT_FAILED
    found = _EXACT.get(event_type)
    if found is not None:
        return found
    for prefix, rule in _PREFIXES.items():
        if event_type.startswith(prefix):
            return rule
    return None
