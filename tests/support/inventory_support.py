"""The one way a test gives a partner a DID: the way production does.

The platform operator adds the number to the carrier inventory and credits the
partner's wallet with the setup fee (a ledger entry; none in TRIAL, when nothing is drawn); the partner buys the number (the service of
``POST /v1/numbers/purchase``) and, when a tenant is named, assigns it (the service
of ``PATCH /v1/dids/{id}``, with the tenant's cap check and its alerts). The wallet
ends at the balance it started from, so tests of call charges see only the calls.

No test creates a DID from nothing: ``POST /v1/dids`` is the platform's grant
(docs/platform.md), tested as such in tests/integration/api/test_platform.py.
"""

from __future__ import annotations

import secrets

import asyncpg

from controlplane.numbers.pricing import SETUP_FEE_MICROS
from controlplane.numbers.services import NumberServices
from controlplane.tenants.applier import Applier
from controlplane.tenants.models import DidUpdate
from controlplane.tenants.numbering import NumberingServices
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind, adjustment_reference


async def buy_did(pool: asyncpg.Pool, partner_id: str, number: str, *, tenant_id: str | None = None,
                  extension_id: str | None = None, numbering: NumberingServices | None = None) -> str:
    """The new DID's id; assigned to ``tenant_id`` (routed to ``extension_id``) when given.

    ``numbering`` carries the caller's applier (a live dialplan); by default one
    without Asterisk. ``number`` is a NANP number (+1, NPA and NXX starting 2-9)."""
    numbers = NumberServices(pool)
    await numbers.load_inventory(f"number,state,city,rate_center\n{number},NY,,\n")
    async with pool.acquire() as conn, conn.transaction():
        if not await wallet_store.in_trial(conn, partner_id):  # in trial the purchase draws nothing
            await wallet_store.post(conn, Entry(
                partner_id, EntryKind.MANUAL_ADJUSTMENT, SETUP_FEE_MICROS,
                adjustment_reference(f"fixture-{secrets.token_hex(8)}"), note=f"setup fee of {number}"))
    did_id = (await numbers.purchase(partner_id, [number])).numbers[0].id
    if tenant_id is not None:
        update = DidUpdate(tenant_id=tenant_id) if extension_id is None \
            else DidUpdate(tenant_id=tenant_id, extension_id=extension_id)
        await (numbering or NumberingServices(pool, Applier(pool))).update_did(partner_id, did_id, update)
    return did_id
