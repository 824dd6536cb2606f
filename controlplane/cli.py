"""The ``controlplane`` command: serve, migrate, asterisk up|down|status|config, edge render, demo, and the
operator's chores: db dsn|backup|restore, platform-token, partners, wallet adjust (docs/operations.md)."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from controlplane.config import Config, ConfigError, load_config
from controlplane.logs import configure_logging

if TYPE_CHECKING:
    from controlplane.asterisk.runner import AsteriskStatus

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

    asterisk = commands.add_parser("asterisk", help="run the local Asterisk; render its configuration")
    asterisk.add_argument("action", choices=["up", "down", "status", "config"])
    asterisk.add_argument("--out", metavar="DIR",
                          help="config: the instance directory to render into (files go into DIR/etc)")
    asterisk.set_defaults(run=_asterisk)

    edge = commands.add_parser("edge", help="render the Kamailio edge's configuration from the database "
                                            "(docs/scale.md)")
    edge.add_argument("action", choices=["render"])
    edge.add_argument("--out", metavar="DIR", required=True,
                      help="the edge's instance directory: kamailio.cfg and dispatcher.list go into DIR/etc")
    edge.add_argument("--address", required=True, help="the edge's IPv4 address (SIP and JSON-RPC)")
    edge.add_argument("--sip-port", type=int, default=5060)
    edge.add_argument("--rpc-port", type=int, default=5071, help="JSON-RPC over HTTP (private address only)")
    edge.add_argument("--carrier", action="append", default=[], metavar="IP",
                      help="an address the carrier's calls come from (repeat)")
    edge.add_argument("--work-dir", default="/srv/controlplane/kamailio",
                      help="the instance directory as Kamailio sees it (DIR, in its container or chroot)")
    edge.set_defaults(run=_edge)

    demo = commands.add_parser("demo", help="bring everything up, place one SIP call, show what was seen")
    demo.set_defaults(run=_demo)
    _operator_commands(commands)
    return parser


def _operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="the database: print its DSN, back it up, restore a backup")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    db_commands.add_parser("dsn", help="print the DSN (the embedded server must be running)").set_defaults(
        run=_db_dsn)
    backup = db_commands.add_parser("backup", help="dump the database into FILE (pg_dump, custom format)")
    backup.add_argument("file", type=Path)
    backup.set_defaults(run=_db_backup)
    restore = db_commands.add_parser("restore", help="load a backup (the daemon stopped)")
    restore.add_argument("file", type=Path)
    restore.add_argument("--replace", action="store_true", help="drop what the database holds first")
    restore.set_defaults(run=_db_restore)

    token = commands.add_parser("platform-token",
                                help="print the platform operator's credential, creating it")
    token.add_argument("--rotate", action="store_true", help="replace it (restart the daemon to apply)")
    token.set_defaults(run=_platform_token)

    commands.add_parser("partners", help="list the partners").set_defaults(run=_partners)

    wallet = commands.add_parser("wallet", help="a partner's wallet")
    wallet_commands = wallet.add_subparsers(required=True, metavar="ACTION")
    adjust = wallet_commands.add_parser("adjust", help="post a manual adjustment (credit > 0, debit < 0)")
    adjust.add_argument("partner_id")
    adjust.add_argument("amount_micros", type=int, help="in micro-units of billing.currency")
    adjust.add_argument("--reason", required=True, help="why (kept on the ledger entry)")
    adjust.add_argument("--reference", required=True,
                        help="your reference: the same one twice posts once "
                             "(ledger reference adjust:REFERENCE)")
    adjust.set_defaults(run=_wallet_adjust)


def _admin(action: Callable[[], Awaitable[str] | str]) -> int:
    """Run one chore: its line on stdout, or its error on stderr (exit 1)."""
    from controlplane.admin import AdminError
    from controlplane.db.embedded import EmbeddedPostgresError
    from controlplane.db.migrate import MigrationError

    try:
        result = action()
        line = asyncio.run(_awaited(result)) if inspect.isawaitable(result) else result
    except (AdminError, EmbeddedPostgresError, MigrationError, OSError, asyncpg.PostgresError) as exc:
        print(f"controlplane: {exc}", file=sys.stderr)
        return 1
    if line:
        print(line)
    return 0


async def _awaited(result: Awaitable[str]) -> str:
    return await result


def _db_dsn(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    return _admin(lambda: admin.dsn(config))


def _db_backup(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    return _admin(lambda: admin.backup(config, args.file))


def _db_restore(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    return _admin(lambda: admin.restore(config, args.file, replace=args.replace))


def _platform_token(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    return _admin(lambda: admin.platform_token(config, rotate=args.rotate))


def _partners(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    async def listing() -> str:
        admin.print_partners(await admin.partners(config))
        return ""

    return _admin(listing)


def _wallet_adjust(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    return _admin(lambda: admin.adjust_wallet(config, args.partner_id, args.amount_micros, reason=args.reason,
                                              reference=args.reference))


def _edge(config: Config, args: argparse.Namespace) -> int:
    from controlplane import admin

    return _admin(lambda: admin.render_edge(config, address=args.address, sip_port=args.sip_port,
                                            rpc_port=args.rpc_port, carrier=tuple(args.carrier),
                                            work_dir=args.work_dir, out=Path(args.out)))


def _serve(config: Config, args: argparse.Namespace) -> int:
    from controlplane import eventloop
    from controlplane.daemon import serve

    return eventloop.run(serve(config))  # uvloop when installed (docs/performance.md)


def _migrate(config: Config, args: argparse.Namespace) -> int:
    from controlplane.db.database import migrate_dsn, open_database
    from controlplane.db.migrate import MigrationError

    async def run() -> int:
        database = await open_database(config)
        try:
            applied = await migrate_dsn(database.dsn)
            print(f"migrations applied: {applied}")
            return 0
        except MigrationError as exc:
            print(f"controlplane: {exc}", file=sys.stderr)
            return 2
        finally:
            database.stop()

    return asyncio.run(run())


def _asterisk(config: Config, args: argparse.Namespace) -> int:
    from controlplane.asterisk.runner import AsteriskError, runner_for

    if args.action == "config":
        return _asterisk_config(config, args.out)
    if args.out:
        print("controlplane: asterisk: --out goes with `asterisk config`", file=sys.stderr)
        return 2
    try:
        if args.action == "up":
            status = _asterisk_up(config)
        elif args.action == "down":
            runner = runner_for(config)
            runner.down()
            status = runner.status()
        else:
            status = runner_for(config).status()
    except AsteriskError as exc:
        print(f"controlplane: asterisk: {exc}", file=sys.stderr)
        return 1
    print(f"asterisk: {'running' if status.running else 'stopped'} ({status.detail})")
    return 0 if status.running or args.action == "down" else 3


def _asterisk_up(config: Config) -> AsteriskStatus:
    """The full configuration (the daemon's), the database found without starting a server."""
    from controlplane.asterisk.bring_up import bring_up, log_restart_needed
    from controlplane.db.database import running_dsn
    from controlplane.plugin_list import PLUGINS

    dsn = running_dsn(config)
    if dsn is None:
        print("controlplane: asterisk: the embedded PostgreSQL is not running: realtime, CDR and dialplan "
              "files are kept from the last start; the daemon rewrites them when it starts", file=sys.stderr)
    brought = asyncio.run(bring_up(config, PLUGINS, dsn))
    for command in brought.reload.commands:
        brought.runner.cli(command)
    log_restart_needed(brought.reload)
    return brought.status or brought.runner.status()


def _asterisk_config(config: Config, out: str | None) -> int:
    from controlplane.asterisk.configuration import asterisk_configuration, debian_moddir, write_instance
    from controlplane.db.database import running_dsn
    from controlplane.plugin_list import PLUGINS

    if not out:
        print("controlplane: asterisk config: --out DIR is required", file=sys.stderr)
        return 2
    dsn = running_dsn(config)
    if dsn is None:
        print("controlplane: asterisk config: no database to read (set database.dsn, or start the daemon "
              "so the embedded PostgreSQL runs)", file=sys.stderr)
        return 1
    try:
        rendered = asyncio.run(asterisk_configuration(config, PLUGINS, dsn=dsn, moddir=debian_moddir()))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"controlplane: asterisk config: database: {exc}", file=sys.stderr)
        return 1
    instance = Path(out).expanduser().resolve()
    write_instance(instance, rendered)
    print(f"asterisk config: {len(rendered.files)} files in {instance / 'etc'}")
    return 0


def _demo(config: Config, args: argparse.Namespace) -> int:
    from controlplane.demo import demo

    return asyncio.run(demo(config))
