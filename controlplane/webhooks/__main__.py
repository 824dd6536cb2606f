"""``python -m controlplane.webhooks``: run only the delivery worker.

Same configuration as the daemon (``-c file`` or ``CONTROLPLANE_*`` variables).
Workers in several processes share the database safely: claims are leased.
"""

from __future__ import annotations

import sys

import asyncpg

from controlplane import standalone
from controlplane.config import Config
from controlplane.secret_box import SecretBox, secret_key
from controlplane.webhooks.settings import Settings
from controlplane.webhooks.worker import Worker


async def run(config: Config) -> int:
    def jobs(pool: asyncpg.Pool) -> list[standalone.Job]:
        worker = Worker(pool=pool, settings=Settings.from_config(config), box=SecretBox(secret_key(config)))
        return [worker.run]

    return await standalone.run_jobs(config, jobs, min_pool=6)


def main(argv: list[str] | None = None) -> int:
    return standalone.main("controlplane.webhooks", __doc__, lambda config, _args: run(config), argv)


if __name__ == "__main__":
    sys.exit(main())
