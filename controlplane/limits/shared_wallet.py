"""Wallet holds shared by the nodes (several daemons, docs/scale.md): a partner's tenants may live
on different nodes, each admitting against the same wallet.

Each node's engine holds its own calls in memory (controlplane.limits.engine); a node cannot
see another's holds there, so two nodes would each admit a call against the whole balance. In
multi-node mode an outbound admission is serialized per partner across nodes by a transaction
advisory lock; inside it the live wallet holds other nodes persisted (``limit_reservations``,
each row carrying the node that wrote it: migration 0029) are held in memory under one
placeholder call for the decision, and the new hold is written before the lock is released, so
the next node's decision sees it. Cost: one short transaction per outbound admission (three
statements), and only in multi-node mode; single-node admission stays query-free.

Over-admission is bounded by the engine's own rule (at most one increment) across nodes; what
can happen is under-admission for a moment: a remote call that was recorded but whose
reservation row is not deleted yet (the engine persists behind, within ~50 ms) counts twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from controlplane.limits import store
from controlplane.limits.engine import Engine
from controlplane.limits.policy import Decision

REMOTE = "\x00other-nodes"  # the placeholder call id: never a linkedid


class SharedWallet:
    def __init__(self, pool: asyncpg.Pool, engine: Engine, node_id: str) -> None:
        self.pool, self.engine, self.node_id = pool, engine, node_id
        # A decision inside the lock may borrow a connection itself (a tenant's first load, a
        # partner refresh): the connections held by lock transactions are bounded to half the pool,
        # and one per partner waits for the database lock (the others queue here), so the pool
        # cannot fill with waiters while the holder needs a connection.
        self._slots = asyncio.Semaphore(max(1, pool.get_max_size() // 2))
        self._partners: dict[str, asyncio.Lock] = {}

    async def admit(self, tenant_id: str, number: str, call_id: str, channel: str = "",
                    inbound: bool = False) -> Decision:
        """``Engine.admit`` with the other nodes' holds on the partner's wallet (the AGI's ``Admit``)."""
        state = None if inbound else await self.engine.tenant(tenant_id)
        partner = state.partner if state is not None else None
        if state is None or partner is None or call_id in state.ledger.holds:
            return await self.engine.admit(tenant_id, number, call_id, channel, inbound)
        lock = self._partners.setdefault(partner.partner_id, asyncio.Lock())
        async with lock, self._slots, self.pool.acquire() as conn, conn.transaction():
            others = await store.lock_wallet_holds(conn, partner.partner_id, self.node_id)
            partner.hold(REMOTE, others)
            try:
                decision = await self.engine.admit(tenant_id, number, call_id, channel, inbound)
            finally:
                partner.release(REMOTE)
            hold = decision.hold
            if decision.admit and hold is not None and hold.wallet_micros > 0:
                admitted, _, expires = state.calls.get(hold.call_id, (datetime.now(UTC), channel, None))
                if expires is not None:
                    await store.save_reservations(conn, [(hold.call_id, tenant_id, hold, channel, admitted,
                                                          expires)])
        return decision
