"""Keeps Asterisk in step with the database.

PJSIP objects: sorcery realtime reads the ``ps_*`` tables, which ``sync_*``
rewrite inside the caller's transaction - a change is live when it commits,
with no PJSIP reload (bench/bench_provisioning.py: a full reload at 20k
endpoints costs ~10 s). Dialplan: ``extensions_tenants.conf`` is re-rendered
and ``dialplan reload``-ed (~0.1 s), with bursts coalesced by a short debounce.
On FullyBooted the whole state is restored; a periodic reconcile repairs drift.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import asyncpg
import structlog

from controlplane.tenants import realtime_store
from controlplane.tenants.store import Conn
from provisioning.dialplan import CARRIER_TRUNK, AdmissionStep, render_dialplan
from provisioning.diff import desired_by_table, diff_table
from provisioning.model import ProvisioningState
from provisioning.pjsip import render_pjsip

if TYPE_CHECKING:
    from controlplane.asterisk.ami import AmiClient

log = structlog.get_logger(__name__)


class AsteriskControl(Protocol):
    async def command(self, command: str) -> str: ...


class DialplanNotLoaded(RuntimeError):
    """Asterisk has no `dialplan reload` yet: pbx_config is not loaded (still booting)."""


@dataclass
class AmiControl:
    """CLI commands over AMI's ``Command`` action."""

    ami: AmiClient

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until Asterisk has said FullyBooted on the current AMI connection.

        Before that, modules (pbx_config among them) may still be loading: a
        `dialplan reload` then fails with "No such command".
        """
        await self.ami.wait_connected(timeout)
        await self.ami.wait_fully_booted(timeout)

    async def command(self, command: str) -> str:
        # Asterisk answers "Response: Error" for a CLI command that reports failure
        # (e.g. a reload already in progress): not an AMI fault, so log it and go on.
        result = await self.ami.action({"Action": "Command", "Command": command}, check=False)
        first = result[0] if isinstance(result, list) else result
        output = first.get("Output", "")
        text = "\n".join(output) if isinstance(output, list) else str(output)
        if first.get("Response") == "Error":
            log.warning("asterisk.command_failed", command=command, output=text[-500:])
        return text


@dataclass(frozen=True, slots=True)
class SyncReport:
    upserted: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    contacts_dropped: int = 0

    @property
    def changed(self) -> bool:
        return any(self.upserted.values()) or any(self.deleted.values()) or self.contacts_dropped > 0


async def render_current(conn: Conn, *, trunk: str, admission: AdmissionStep) -> str:
    """The whole tenant dialplan as the database says now (also what Asterisk boots with)."""
    return render_dialplan(await realtime_store.load_state(conn), trunk=trunk, admission=admission)


@dataclass
class Applier:
    pool: asyncpg.Pool
    dialplan_path: Path | None = None
    control: AsteriskControl | None = None
    debounce: float = 0.05
    trunk: str = CARRIER_TRUNK  # PJSIP endpoint of the carrier trunk (config carrier.endpoint)
    # The admission step and its fail policy (config limits.enabled / limits.fail_open).
    admission: AdmissionStep = AdmissionStep.FAIL_CLOSED
    _wanted: asyncio.Event = field(default_factory=asyncio.Event)
    _applied: asyncio.Event = field(default_factory=asyncio.Event)
    _generation: int = 0
    last_reload_seconds: float | None = None
    # Several nodes (docs/scale.md): told of every change asked here, so the other nodes'
    # appliers render theirs too (the tenants plugin sends ``dialplan_changed``, relayed to them).
    announce: Callable[[], None] | None = None

    # ------------------------------------------------------------ PJSIP (in transaction)

    async def sync_tenant(self, conn: Conn, tenant_id: str) -> SyncReport:
        """Make the tenant's ps_* rows match its extensions and status."""
        state = await realtime_store.load_state(conn, tenant_id)
        return await self._sync(conn, state, tenant_id)

    async def sync_all(self, conn: Conn) -> SyncReport:
        return await self._sync(conn, await realtime_store.load_state(conn), None)

    async def _sync(self, conn: Conn, state: ProvisioningState, tenant_id: str | None) -> SyncReport:
        upserted: dict[str, int] = {}
        deleted: dict[str, int] = {}
        removed_aors: list[str] = []
        for table, desired in desired_by_table(render_pjsip(state)).items():
            actual = await realtime_store.fetch_rows(conn, table, tenant_id)
            diff = diff_table(table, desired, actual)
            await realtime_store.upsert_rows(conn, table, diff.upserts)
            await realtime_store.delete_rows(conn, table, diff.deletes)
            upserted[table], deleted[table] = len(diff.upserts), len(diff.deletes)
            if table == "ps_aors":
                removed_aors = list(diff.deletes)
        if tenant_id is None:
            removed_aors += await realtime_store.orphan_contact_aors(conn)
        dropped = await realtime_store.drop_contacts(conn, removed_aors)
        return SyncReport(upserted, deleted, dropped)

    # ------------------------------------------------------------ dialplan (after commit)

    def dialplan_changed(self, *, announce: bool = True) -> None:
        """Ask for a re-render; many calls within ``debounce`` make one reload. ``announce``
        False: the change came as ``dialplan_changed`` already (not told again)."""
        self._generation += 1
        self._applied.clear()
        self._wanted.set()
        if announce and self.announce is not None:
            self.announce()

    async def wait_applied(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._applied.wait(), timeout)

    async def run(self) -> None:
        """Background job: coalesce change requests into dialplan reloads."""
        while True:
            await self._wanted.wait()
            await asyncio.sleep(self.debounce)
            self._wanted.clear()
            generation = self._generation
            try:
                await self.apply_dialplan()
            except Exception:
                log.exception("provisioning.dialplan_failed")
                await asyncio.sleep(1.0)
                self._wanted.set()
                continue
            if generation == self._generation:
                self._applied.set()

    async def render(self, conn: Conn) -> str:
        return await render_current(conn, trunk=self.trunk, admission=self.admission)

    async def apply_dialplan(self, *, force: bool = False) -> bool:
        """Render, write when different (or forced), reload. True when reloaded."""
        async with self.pool.acquire() as conn:
            text = await self.render(conn)
        if self.dialplan_path is None:
            return False
        current = self.dialplan_path.read_text() if self.dialplan_path.exists() else None
        if current == text and not force:
            return False
        tmp = self.dialplan_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.dialplan_path)
        if self.control is None:
            log.warning("provisioning.no_asterisk_control", detail="dialplan written, not reloaded")
            return False
        started = time.perf_counter()
        output = await self.control.command("dialplan reload")
        if "No such command" in output:
            raise DialplanNotLoaded(output.strip()[-200:])
        self.last_reload_seconds = time.perf_counter() - started
        log.info("provisioning.dialplan_reloaded", seconds=round(self.last_reload_seconds, 3),
                 bytes=len(text))
        return True

    # ------------------------------------------------------------ restore and reconcile

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until Asterisk is FullyBooted (when the control can tell)."""
        wait = getattr(self.control, "wait_ready", None)
        if wait is not None:
            await wait(timeout)

    async def restore(self, boot_timeout: float = 300.0) -> SyncReport:
        """After an Asterisk (re)start: every object and the dialplan, from the database.

        The rows are repaired at once (Asterisk reads them on demand); the dialplan
        reload waits for FullyBooted, and is retried while pbx_config is not there yet.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            report = await self.sync_all(conn)
        deadline = time.monotonic() + boot_timeout
        while True:
            await self.wait_ready(max(0.0, deadline - time.monotonic()))
            try:
                await self.apply_dialplan(force=True)
                break
            except DialplanNotLoaded:
                if time.monotonic() >= deadline:
                    raise
                log.info("provisioning.restore_waiting", detail="dialplan reload not available yet")
                await asyncio.sleep(0.5)
        log.info("provisioning.restored", upserted=report.upserted, deleted=report.deleted)
        return report

    async def reconcile(self) -> SyncReport:
        """Repair drift between the database and what Asterisk reads; log what was fixed."""
        async with self.pool.acquire() as conn, conn.transaction():
            report = await self.sync_all(conn)
        reloaded = await self.apply_dialplan()
        if report.changed or reloaded:
            log.warning("provisioning.drift_repaired", upserted=report.upserted, deleted=report.deleted,
                        contacts_dropped=report.contacts_dropped, dialplan_rewritten=reloaded)
        return report

    async def reconcile_forever(self, interval: float = 300.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile()
            except Exception:
                log.exception("provisioning.reconcile_failed")
