"""Follows committed balance changes: ``wallet_changed`` notifications (from every daemon)
become ``signals.wallet_changed`` and a look at the partner (auto-recharge, warning).

The notification is sent by the statement that moved the balance and delivered on commit
only; a LISTEN connection lost (or a daemon restarted) misses some, so a periodic sweep
looks at every balance that is due anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from controlplane.db.listen import listen_forever
from controlplane.signals import WalletChanged
from controlplane.wallet import store
from controlplane.wallet.services import WalletServices

log = structlog.get_logger(__name__)
RECONNECT_SECONDS = 1.0
CHECK_SPACING = 0.5  # seconds between two looks at the partners whose balance moved


def parse(payload: str) -> WalletChanged | None:
    """``'<partner_id> <balance>'``; None for anything else (never raises on a stray NOTIFY)."""
    partner, _, balance = payload.partition(" ")
    try:
        return WalletChanged(partner, int(balance)) if partner else None
    except ValueError:
        return None


class WalletFollower:
    def __init__(self, pool: asyncpg.Pool, services: WalletServices,
                 on_changed: Callable[[WalletChanged], None], *, sweep_seconds: float = 60.0) -> None:
        self.pool = pool
        self.services = services
        self.on_changed = on_changed
        self.sweep_seconds = sweep_seconds
        self._due: set[str] = set()
        self._wake = asyncio.Event()
        self.listening = asyncio.Event()  # set while the LISTEN connection is up (tests wait on it)
        self.checked = 0
        self._sweep_now = False

    def poke(self, partner_id: str) -> None:
        self._due.add(partner_id)
        self._wake.set()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        change = parse(str(payload))
        if change is None:
            log.warning("wallet.bad_notification", payload=str(payload)[:100])
            return
        self.on_changed(change)
        self.poke(change.partner_id)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.listen())
            group.create_task(self.work())
            group.create_task(self.sweep_forever())

    async def listen(self) -> None:
        """Hold one pool connection LISTENing; reconnect when it is lost. Each (re)established
        LISTEN is followed by a sweep: notifications may have been missed meanwhile."""
        def listening() -> None:
            self.listening.set()
            self.poke_all_later()

        def lost() -> None:
            self.listening.clear()
            log.warning("wallet.listen_lost", exc_info=True)

        await listen_forever(self.pool, store.CHANNEL, self._notified, period=RECONNECT_SECONDS,
                             on_listening=listening, on_lost=lost)

    def poke_all_later(self) -> None:
        """Notifications may have been missed: the next sweep runs now."""
        self._sweep_now = True
        self._wake.set()

    async def work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._sweep_now:
                self._sweep_now = False
                await self._guarded(self.services.sweep)
            while self._due:
                partner_id = min(self._due)
                self._due.discard(partner_id)
                await self._guarded(lambda: self.services.check(partner_id))
                self.checked += 1
            # A busy partner's calls commit a notification per batch: what arrives meanwhile is
            # coalesced and looked at once per spacing (one check, not one per batch).
            await asyncio.sleep(CHECK_SPACING)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            self.poke_all_later()

    async def _guarded(self, step: Callable[[], object]) -> None:
        try:
            result = step()
            if asyncio.iscoroutine(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wallet.check_failed")
            await asyncio.sleep(RECONNECT_SECONDS)
