"""Every event type the platform emits, grouped as the portal shows them.

Endpoints subscribe to these names (or ``*``) and ``emit()`` refuses any other:
a typo in a capability must fail its tests, not silently send nothing. A new
type is added here, with its category, before any capability emits it.
"""

from __future__ import annotations

from types import MappingProxyType

CATEGORIES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "tenants": ("tenant.created", "tenant.updated", "tenant.suspended", "tenant.unsuspended",
                "tenant.deleted"),
    "phone_numbers": ("phone_number.purchased", "phone_number.assigned", "phone_number.released",
                      "phone_number.updated"),
    "extensions": ("extension.created", "extension.updated", "extension.deleted"),
    # The partner guide spells the last one "check-out.session.completed"; Stripe's
    # name, which the platform passes on, is checkout.session.completed.
    # subscription.price_change_scheduled: the operator posted a tier's new prices (seed 003 "Rate changes").
    "billing": ("subscription.updated", "subscription.activated", "subscription.price_change_scheduled",
                "invoice.created", "invoice.paid",
                "invoice.failed", "payment_method.attached", "payment.failed",
                "checkout.session.completed",
                # Tenant billing (docs/invoices.md "Events"): dunning flags an invoice overdue; a refund's
                # credit note gets its number.
                "invoice.overdue", "credit_note.issued"),
    "calls": ("call.initiated", "call.answered", "call.completed", "call.failed"),
    "inbound_calls": ("inbound_call.ringing", "inbound_call.answered", "inbound_call.completed",
                      "inbound_call.abandoned"),
    "usage": ("usage.threshold_reached", "usage.cap_reached"),
    "wallet": ("wallet.low_balance",),
    "webhooks": ("webhook_endpoint.disabled",),
    "e911": ("e911.unregistered_call", "e911.status_changed"),
    "porting": ("port_request.created", "port_request.updated", "port_request.submitted",
                "port_request.foc_received", "port_request.completed", "port_request.rejected",
                "port_request.cancelled"),
    # Queue callers (controlplane/queues, from app_queue's AMI events; docs/queues.md).
    "queues": ("queue.caller_joined", "queue.caller_answered", "queue.caller_abandoned"),
    # IVR menus, time conditions and DID routes (controlplane/flows, docs/flows.md).
    "call_flows": ("ivr.created", "ivr.updated", "ivr.deleted", "time_condition.created",
                   "time_condition.updated", "time_condition.deleted", "phone_number.routed"),
})

EVENT_TYPES: frozenset[str] = frozenset(t for types in CATEGORIES.values() for t in types)
ALL = "*"


class UnknownEventType(ValueError):
    """An event type that is not in the registry: a programming error in the emitter."""


def check(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {event_type!r}: add it to controlplane/events/registry.py")
    return event_type
