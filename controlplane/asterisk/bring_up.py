"""Give Asterisk its whole configuration and start it: the daemon's way and ``controlplane asterisk up``.

Local and container runners: the configuration goes into the instance's etc
directory and the runner starts Asterisk from it (an Asterisk already running gets
the changed files, and ``reload`` says what it must re-read). External: with
``asterisk.config_dir`` the configuration goes into ``<config_dir>/etc`` and
nothing is started (docs/deployment.md, the contract with the Asterisk container).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from controlplane.asterisk.configuration import (
    ReloadPlan, asterisk_configuration, debian_moddir, reload_plan, write_instance,
)
from controlplane.asterisk.runner import AsteriskRunner, AsteriskStatus, runner_for
from controlplane.config import AsteriskRunMode, Config
from controlplane.plugins import Plugin

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BroughtUp:
    runner: AsteriskRunner
    started_here: bool  # this call started Asterisk (the daemon then stops it on exit)
    reload: ReloadPlan  # what an Asterisk that was already running must re-read
    status: AsteriskStatus | None = None


async def bring_up(config: Config, plugins: Sequence[Plugin], dsn: str | None) -> BroughtUp:
    """Write the full configuration; start Asterisk unless someone else runs it."""
    if config.asterisk.run is AsteriskRunMode.EXTERNAL:
        runner = runner_for(config)
        changed: set[str] = set()
        if config.asterisk.config_dir:
            rendered = await asterisk_configuration(config, plugins, dsn=dsn, moddir=debian_moddir())
            instance = Path(config.asterisk.config_dir).expanduser().resolve()
            changed = await asyncio.to_thread(write_instance, instance, rendered)
            log.info("asterisk.config_written", dir=str(instance / "etc"), changed=sorted(changed))
        return BroughtUp(runner, False, reload_plan(changed))
    probe = runner_for(config)
    moddir = await asyncio.to_thread(probe.moddir)  # local: builds the root filesystem when missing
    rendered = await asterisk_configuration(config, plugins, dsn=dsn, moddir=moddir)
    runner = runner_for(config, rendered=rendered)
    was_running = (await asyncio.to_thread(runner.status)).running
    changed = set()
    if was_running and runner.etc_dir is not None:
        changed = await asyncio.to_thread(rendered.write, Path(runner.etc_dir))
    status = await asyncio.to_thread(runner.up)
    log.info("asterisk.up", detail=status.detail, started_here=not was_running, changed=sorted(changed))
    return BroughtUp(runner, not was_running, reload_plan(changed), status)


def log_restart_needed(plan: ReloadPlan) -> None:
    if plan.restart_needed:
        log.warning("asterisk.restart_needed", files=list(plan.restart_needed),
                    detail="these files are read at start only: restart Asterisk to apply them")
