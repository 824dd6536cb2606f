"""The card retries' charge: collection's ``collect`` (its charges module, not its plugin), with a
provider resolver of our own (the partner's Stripe mode, one provider per account)."""

from __future__ import annotations

import asyncpg
import structlog

from controlplane.collection import charges
from controlplane.collection.charges import Outcome
from controlplane.collection.providers import Resolver
from controlplane.config import Config
from controlplane.dunning.jobs import Collect
from controlplane.signals import Signals

log = structlog.get_logger(__name__)


def retrier(pool: asyncpg.Pool, config: Config, signals: Signals) -> Collect:
    """``collect(invoice_id, attempt)`` for ``run_dunning``: what the invoice still owes, charged to
    the tenant's default card once per attempt (a decline is collection's to report)."""
    resolver = Resolver.from_config(config)

    async def collect(invoice_id: str, attempt: int) -> Outcome:
        outcome = await charges.collect(pool, resolver, signals, invoice_id=invoice_id, attempt=attempt)
        log.info("dunning.retry_outcome", invoice_id=invoice_id, attempt=attempt, status=outcome.status,
                 code=outcome.code)
        return outcome

    return collect
