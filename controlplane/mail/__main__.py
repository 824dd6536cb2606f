"""``python -m controlplane.mail``: run only the mail worker (and, with --notifier, the notifier).

Same configuration as the daemon (``-c file`` or ``CONTROLPLANE_*`` variables). Workers
in several processes share the outbox safely: claims are leased.
"""

from __future__ import annotations

import argparse
import sys

import asyncpg

from controlplane import standalone
from controlplane.config import Config
from controlplane.mail.notifier import Notifier
from controlplane.mail.worker import MailWorker


async def run(config: Config, notifier: bool) -> int:
    def jobs(pool: asyncpg.Pool) -> list[standalone.Job]:
        runs: list[standalone.Job] = [MailWorker(pool=pool, config=config.mail).run]
        if notifier:
            runs.append(Notifier(pool=pool).run)
        return runs

    return await standalone.run_jobs(config, jobs, min_pool=3)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notifier", action="store_true", help="also run the event notifier")


def main(argv: list[str] | None = None) -> int:
    return standalone.main("controlplane.mail", __doc__, lambda config, args: run(config, args.notifier),
                           argv, _arguments)


if __name__ == "__main__":
    sys.exit(main())
