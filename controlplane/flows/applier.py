"""Keeps each tenant's ``<prefix>-flows`` context in Asterisk in step with the database.

One tenant's change (``tenant_flows_changed``) re-renders that tenant only, writes its file
(``extensions_flows_<prefix>.conf``, what a full ``dialplan reload`` or a restart loads) and
applies the difference to the running dialplan with AMI ``DialplanExtensionAdd``/``Remove``:
no reload, no other tenant touched, calls in progress go on (docs/flows.md has the figures).
After an Asterisk (re)start every tenant is rendered, written, and loaded by one reload.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import asyncpg
import structlog

from controlplane.destinations import FlowSection
from controlplane.flows import store
from provisioning.destinations import flows_context
from provisioning.flow_compile import BadLine, Compiled, compile_context, diff, render_file

if TYPE_CHECKING:
    from controlplane.asterisk.ami import AmiClient

log = structlog.get_logger(__name__)
FILE_PREFIX = "extensions_flows_"  # extensions.conf: #tryinclude extensions_flows_*.conf


def flows_file(prefix: str) -> str:
    return f"{FILE_PREFIX}{prefix}.conf"


async def render_contexts(conn: asyncpg.Connection, sections: Sequence[FlowSection],
                          tenant_ids: Sequence[str] | None, failed: set[str] | None = None
                          ) -> dict[str, tuple[str, Compiled]]:
    """Tenant id -> (prefix, compiled flows context), from every section's lines; a tenant
    whose lines do not compile is left out and added to ``failed``."""
    tenants = await store.render_tenants(conn, tenant_ids)
    ids = [t["id"] for t in tenants]
    lines: dict[str, list[str]] = {tid: [] for tid in ids}
    for section in sections:
        for tid, part in (await section.render(conn, ids)).items():
            if tid in lines:
                lines[tid].extend(part)
    out: dict[str, tuple[str, Compiled]] = {}
    for t in tenants:
        context = flows_context(t["sip_prefix"])
        try:
            out[t["id"]] = (t["sip_prefix"], compile_context(context, lines[t["id"]]))
        except BadLine as exc:
            # One section's bad line must not take every tenant's flows down: this tenant keeps
            # what Asterisk has (the applier leaves it alone), and the bug is logged loudly.
            log.error("flows.render_refused", tenant_id=t["id"], error=str(exc))
            if failed is not None:
                failed.add(t["id"])
    return out


@dataclass
class FlowsApplier:
    pool: asyncpg.Pool
    sections: Sequence[FlowSection]
    etc_dir: Path | None = None
    ami: AmiClient | None = None
    debounce: float = 0.0
    _applied: dict[str, tuple[str, Compiled]] = field(default_factory=dict)
    _pending: set[str] = field(default_factory=set)
    _wanted: asyncio.Event = field(default_factory=asyncio.Event)
    _done: dict[str, asyncio.Event] = field(default_factory=dict)
    _all: bool = False
    _prints: dict[str, str] = field(default_factory=dict)  # store.fingerprints at the last look
    last_apply_seconds: float | None = None

    # ------------------------------------------------------------ change requests

    def changed(self, tenant_id: str) -> None:
        """A tenant's flows changed and committed (the signal's handler: note, never wait)."""
        self._pending.add(tenant_id)
        self._done.setdefault(tenant_id, asyncio.Event()).clear()
        self._wanted.set()

    def changed_all(self) -> None:
        """Data every tenant's entries read changed (DIDs assigned, extensions added: the tenants
        and numbers capabilities say ``dialplan_changed`` without naming the tenant): all are
        re-rendered, and only the differences reach Asterisk."""
        self._all = True
        self._wanted.set()

    async def wait_applied(self, tenant_id: str, timeout: float = 5.0) -> None:
        """Until the tenant's latest change is live (a tenant not applied yet: its first apply)."""
        await asyncio.wait_for(self._done.setdefault(tenant_id, asyncio.Event()).wait(), timeout)

    async def run(self) -> None:
        """Background job: apply pending tenants, a batch at a time."""
        while True:
            await self._wanted.wait()
            if self.debounce:
                await asyncio.sleep(self.debounce)
            self._wanted.clear()
            batch, self._pending = self._pending, set()
            every, self._all = self._all, False
            try:
                if every:
                    batch |= await self._moved()
                await self.apply(sorted(batch))
            except Exception:
                log.exception("flows.apply_failed", tenants=len(batch), every=every)
                self._pending |= batch
                self._all = self._all or every
                await asyncio.sleep(1.0)
                self._wanted.set()
                continue
            for tid in batch:
                if tid not in self._pending:
                    self._done.setdefault(tid, asyncio.Event()).set()

    async def _moved(self) -> set[str]:
        """Tenants whose extensions, DIDs or status changed since the last look (or appeared or
        went): one query instead of re-rendering every tenant on each ``dialplan_changed``."""
        async with self.pool.acquire() as conn:
            prints = await store.fingerprints(conn)
        moved = {t for t, d in prints.items() if self._prints.get(t) != d} | (set(self._prints) - set(prints))
        self._prints = prints
        return moved

    # ------------------------------------------------------------ applying

    def _write(self, prefix: str, compiled: Compiled | None) -> None:
        if self.etc_dir is None:
            return
        path = self.etc_dir / flows_file(prefix)
        if compiled is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(render_file(flows_context(prefix), compiled, "Rendered by the control plane (flows)."))
        os.replace(tmp, path)

    async def apply(self, tenant_ids: Sequence[str] | None) -> int:
        """Re-render these tenants (None: every one) and apply each one's difference; the
        number of AMI actions sent."""
        started = time.perf_counter()
        failed: set[str] = set()
        async with self.pool.acquire() as conn:
            rendered = await render_contexts(cast(asyncpg.Connection, conn), self.sections, tenant_ids, failed)
        if tenant_ids is None:
            tenant_ids = sorted(set(rendered) | set(self._applied))
        sent = 0
        for tid in tenant_ids:
            if tid in failed:
                continue
            old_prefix, old = self._applied.get(tid, ("", {}))
            prefix, new = rendered.get(tid, (old_prefix, {}))
            if not prefix:
                continue
            self._write(prefix, new if tid in rendered else None)
            sent += await self._send(flows_context(prefix), old, new)
            if tid in rendered:
                self._applied[tid] = (prefix, new)
            else:
                self._applied.pop(tid, None)
        self.last_apply_seconds = time.perf_counter() - started
        log.info("flows.applied", tenants=len(tenant_ids), actions=sent,
                 ms=round(self.last_apply_seconds * 1000, 1))
        return sent

    async def _send(self, context: str, old: Compiled, new: Compiled) -> int:
        change = diff(old, new)
        if change.empty or self.ami is None:
            return 0
        ami = self.ami
        # Adds may run together (each replaces one priority); removals after them.
        await asyncio.gather(*(ami.action({
            "Action": "DialplanExtensionAdd", "Context": context, "Extension": p.exten,
            "Priority": str(p.number), "Application": p.app, "ApplicationData": p.data, "Replace": "yes"})
            for p in change.add))
        await asyncio.gather(*(ami.action({
            "Action": "DialplanExtensionRemove", "Context": context, "Extension": e, "Priority": str(n)},
            check=False) for e, n in change.remove_priorities))
        await asyncio.gather(*(ami.action({
            "Action": "DialplanExtensionRemove", "Context": context, "Extension": e}, check=False)
            for e in change.remove_extens))
        return len(change.add) + len(change.remove_priorities) + len(change.remove_extens)

    async def restore(self) -> int:
        """Every tenant rendered and written, then one ``dialplan reload`` loads them all (after an
        Asterisk (re)start: AMI-added priorities did not survive it). The tenants written."""
        if self.etc_dir is None:
            # No file Asterisk reads (an external Asterisk without asterisk.config_dir): every
            # tenant's context goes over AMI, from nothing.
            if self.ami is not None:
                await self.ami.wait_fully_booted()
            self._applied = {}
            await self._moved()
            await self.apply(None)
            log.info("flows.restored", tenants=len(self._applied), over="ami")
            return len(self._applied)
        async with self.pool.acquire() as conn:
            failed: set[str] = set()
            rendered = await render_contexts(cast(asyncpg.Connection, conn), self.sections, None, failed)
            prefixes = {r["id"]: r["sip_prefix"] for r in await store.render_tenants(conn, sorted(failed))}
        if self.etc_dir is not None:
            # a tenant that failed to render keeps its last file
            keep = {flows_file(prefix) for prefix, _ in rendered.values()} | {flows_file(p) for p in prefixes.values()}
            for path in self.etc_dir.glob(f"{FILE_PREFIX}*.conf"):
                if path.name not in keep:
                    path.unlink(missing_ok=True)
        for prefix, compiled in rendered.values():
            self._write(prefix, compiled)
        if self.ami is not None:
            await self.ami.wait_fully_booted()
            await self.ami.action({"Action": "Command", "Command": "dialplan reload"}, check=False)
        self._applied = dict(rendered)
        await self._moved()  # the baseline of later dialplan_changed looks
        log.info("flows.restored", tenants=len(rendered))
        return len(rendered)
