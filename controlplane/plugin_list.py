"""The capabilities the daemon runs, in install order (the one place that names them)."""

from __future__ import annotations

from controlplane.config import PaymentsConfig
from controlplane.account.plugin import PLUGIN as ACCOUNT
from controlplane.apikeys.plugin import PLUGIN as APIKEYS
from controlplane.audit.plugin import PLUGIN as AUDIT
from controlplane.brand.plugin import PLUGIN as BRAND
from controlplane.calls.plugin import PLUGIN as CALLS
from controlplane.collection.plugin import PLUGIN as COLLECTION
from controlplane.dunning.plugin import PLUGIN as DUNNING
from controlplane.events.plugin import PLUGIN as EVENTS
from controlplane.flows.plugin import PLUGIN as FLOWS
from controlplane.invoice_delivery.plugin import PLUGIN as INVOICE_DELIVERY
from controlplane.invoices.plugin import PLUGIN as INVOICES
from controlplane.limits.plugin import PLUGIN as LIMITS
from controlplane.mail.plugin import PLUGIN as MAIL
from controlplane.moh.plugin import PLUGIN as MOH
from controlplane.nodes.plugin import PLUGIN as NODES
from controlplane.numbers.plugin import PLUGIN as NUMBERS
from controlplane.payments.plugin import PLUGIN as PAYMENTS
from controlplane.payments.stripe_provider import provider_from_config
from controlplane.plugins import Plugin
from controlplane.profiles.plugin import PLUGIN as PROFILES
from controlplane.queues.plugin import PLUGIN as QUEUES
from controlplane.recordings.plugin import PLUGIN as RECORDINGS
from controlplane.voicemail.plugin import PLUGIN as VOICEMAIL
from controlplane.reports.plugin import PLUGIN as REPORTS
from controlplane.ring_groups.plugin import PLUGIN as RING_GROUPS
from controlplane.shared.payments import PaymentProvider
from controlplane.team.plugin import PLUGIN as TEAM
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.wallet.plugin import PLUGIN as WALLET
from controlplane.webhooks.plugin import PLUGIN as WEBHOOKS

PLUGINS: list[Plugin] = [TENANTS, EVENTS, WEBHOOKS, NUMBERS, APIKEYS, AUDIT, CALLS, PROFILES, LIMITS, PAYMENTS, WALLET, ACCOUNT, BRAND, MAIL, TEAM, INVOICES, INVOICE_DELIVERY, COLLECTION, DUNNING, FLOWS, RECORDINGS, VOICEMAIL, RING_GROUPS, QUEUES, MOH, NODES, REPORTS]


def payment_provider(config: PaymentsConfig) -> PaymentProvider | None:
    """``Context.payments`` (None: payments disabled), for the daemon, which names no capability."""
    return provider_from_config(config)
