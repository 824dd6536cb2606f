"""``python -m controlplane.webhooks``: run only the delivery worker.

Same configuration as the daemon (``-c file`` or ``CONTROLPLANE_*`` variables).
Workers in several processes share the database safely: claims are leased.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from controlplane.config import Config, ConfigError, load_config
from controlplane.db.database import create_pool, migrate_dsn, open_database
from controlplane.logs import configure_logging
from controlplane.secret_box import SecretBox, secret_key
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.worker import Worker


async def run(config: Config) -> int:
    database = await open_database(config)
    await migrate_dsn(database.dsn)
    pool = await create_pool(database.dsn, config.database.pool_min, max(config.database.pool_max, 6))
    worker = Worker(pool=pool, settings=Settings.from_config(config), box=SecretBox(secret_key(config)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
        database.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.webhooks", description=__doc__)
    parser.add_argument("-c", "--config", default=os.environ.get("CONTROLPLANE_CONFIG"))
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"controlplane.webhooks: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    return asyncio.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
