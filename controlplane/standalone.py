"""Run one capability's background jobs as a process of their own (``python -m controlplane.<name>``).

The mail and webhook workers each have such an entry point: same configuration as the daemon
(``-c file`` or ``CONTROLPLANE_*`` variables), their own pool on the same database, and a clean
stop on SIGINT/SIGTERM. This module holds what those entry points share; each says only which
jobs to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg

from controlplane import eventloop
from controlplane.config import Config, ConfigError, load_config
from controlplane.db.database import create_pool, migrate_dsn, open_database
from controlplane.db.migrate import MigrationError
from controlplane.logs import configure_logging

Job = Callable[[], Coroutine[Any, Any, None]]


async def run_jobs(config: Config, jobs: Callable[[asyncpg.Pool], Sequence[Job]], *, min_pool: int) -> int:
    """Open and migrate the database, run ``jobs(pool)`` until one ends or a signal comes, then stop all.

    ``min_pool`` is the pool size the jobs need at least, whatever ``database.pool_max`` says.
    """
    database = await open_database(config)
    await migrate_dsn(database.dsn)
    pool = await create_pool(database.dsn, config.database.pool_min, max(config.database.pool_max, min_pool))
    runs = jobs(pool)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(job()) for job in runs]
    try:
        await asyncio.wait([*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
        database.stop()
    return 0


def main(name: str, description: str | None,
         run: Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]], argv: list[str] | None = None,
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse ``-c``, load the configuration and run ``run(config, args)``: exit 2 with one line on bad
    configuration or a failed migration, as ``controlplane serve`` does."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=description)
    parser.add_argument("-c", "--config", default=os.environ.get("CONTROLPLANE_CONFIG"))
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    try:
        return eventloop.run(run(config, args))  # uvloop when installed (docs/performance.md)
    except MigrationError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
