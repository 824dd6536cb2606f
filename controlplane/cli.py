"""The ``controlplane`` command: serve, migrate, asterisk up|down|status, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from controlplane.config import Config, ConfigError, load_config
from controlplane.logs import configure_logging

DEFAULT_CONFIG = "controlplane.yaml"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        print(f"controlplane: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    return int(args.run(config, args) or 0)


def _config_path(explicit: str | None) -> str | None:
    """An explicit file, else $CONTROLPLANE_CONFIG, else ./controlplane.yaml if present."""
    path = explicit or os.environ.get("CONTROLPLANE_CONFIG")
    if path:
        return path
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="controlplane", description=__doc__)
    parser.add_argument("-c", "--config", help=f"YAML config file (default: ./{DEFAULT_CONFIG} if present)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(run=_migrate)

    asterisk = commands.add_parser("asterisk", help="run the local Asterisk")
    asterisk.add_argument("action", choices=["up", "down", "status"])
    asterisk.set_defaults(run=_asterisk)

    demo = commands.add_parser("demo", help="bring everything up, place one SIP call, show what was seen")
    demo.set_defaults(run=_demo)
    return parser


def _serve(config: Config, args: argparse.Namespace) -> int:
    from controlplane.daemon import serve

    return asyncio.run(serve(config))


def _migrate(config: Config, args: argparse.Namespace) -> int:
    from controlplane.db.database import migrate_dsn, open_database

    async def run() -> int:
        database = await open_database(config)
        try:
            applied = await migrate_dsn(database.dsn)
            print(f"migrations applied: {applied}")
            return 0
        finally:
            database.stop()

    return asyncio.run(run())


def _asterisk(config: Config, args: argparse.Namespace) -> int:
    from controlplane.asterisk.runner import AsteriskError, runner_for

    runner = runner_for(config)
    try:
        if args.action == "up":
            status = runner.up()
        elif args.action == "down":
            runner.down()
            status = runner.status()
        else:
            status = runner.status()
    except AsteriskError as exc:
        print(f"controlplane: asterisk: {exc}", file=sys.stderr)
        return 1
    print(f"asterisk: {'running' if status.running else 'stopped'} ({status.detail})")
    return 0 if status.running or args.action == "down" else 3


def _demo(config: Config, args: argparse.Namespace) -> int:
    from controlplane.demo import demo

    return asyncio.run(demo(config))
