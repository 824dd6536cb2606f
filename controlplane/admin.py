"""Operator chores the API does not cover (``controlplane db|platform-token|partners|wallet``).

Backups are PostgreSQL's own custom-format dumps, made and restored with the wheel's
``pg_dump``/``pg_restore`` (the same major version as the embedded server, and newer than
or equal to any server we support). The dump holds sealed secrets: it is written 0600, and
it is useless without ``<data_dir>/secrets`` (the keys), which is backed up as files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from controlplane.config import Config
from controlplane.db.database import DATABASE_NAME, OWNER_FILE, Database, open_database
from controlplane.db.embedded import EmbeddedPostgres, tool
from controlplane.keystore import install_secret
from controlplane.wallet import store as wallet_store
from controlplane.wallet.models import Entry, EntryKind

PLATFORM_TOKEN = "platform_token"


class AdminError(Exception):
    """One line for the operator; the command exits 1."""


def _libpq_env(dsn: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the PostgreSQL programs, the password in the environment
    (not on a command line that ``ps`` shows)."""
    env = dict(os.environ)
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        return [f"--dbname={dsn}"], env  # a keyword/value string: passed as it is
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    for name, value in (("PGHOST", parts.hostname), ("PGPORT", str(parts.port) if parts.port else None),
                        ("PGUSER", unquote(parts.username) if parts.username else None),
                        ("PGDATABASE", unquote(parts.path.lstrip("/")) or None)):
        if value:
            env[name] = value
    for key, values in parse_qs(parts.query).items():
        env[f"PG{key.upper()}"] = values[-1]  # sslmode=require -> PGSSLMODE, ...
    return [], env


def _run(program: str, args: list[str], dsn: str) -> None:
    connection, env = _libpq_env(dsn)
    result = subprocess.run([str(tool(program)), *connection, *args], capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL, timeout=3600)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise AdminError(f"{program} failed ({result.returncode}): {tail}")


def _daemon_pid(config: Config) -> int | None:
    """The live daemon that owns the embedded server, if any."""
    if config.database.dsn:
        return None
    try:
        pid = int((config.data_path / "postgres" / OWNER_FILE).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


async def backup(config: Config, out: Path) -> str:
    """Dump the database into ``out`` (custom format); returns a one-line summary."""
    database = await open_database(config)
    try:
        out = out.expanduser().resolve()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # pg_dump keeps the mode
        os.close(fd)
        os.chmod(out, 0o600)
        _run("pg_dump", ["--format=custom", f"--file={out}"], database.dsn)
        return f"backup: {out} ({out.stat().st_size:,} bytes); keep {config.data_path / 'secrets'} with it"
    finally:
        database.stop()


async def restore(config: Config, dump: Path, *, replace: bool) -> str:
    """Load a dump made by ``backup`` into the daemon's database (created when missing).

    A database that holds a schema already is refused unless ``replace``: then its public
    schema is dropped first. The daemon must not run meanwhile (embedded: checked)."""
    dump = dump.expanduser().resolve()
    if not dump.is_file():
        raise AdminError(f"restore: {dump}: no such file")
    pid = _daemon_pid(config)
    if pid is not None:
        raise AdminError(f"restore: the daemon (pid {pid}) is running on this database: stop it first")
    database = await open_database(config)
    try:
        conn = await asyncpg.connect(database.dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('public.schema_migrations')") is not None:
                if not replace:
                    raise AdminError("restore: the database is not empty: pass --replace to drop what it "
                                     "holds and load the backup instead")
                await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
        _run("pg_restore", ["--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges",
                            f"--dbname={_database_name(database)}", str(dump)], database.dsn)
        conn = await asyncpg.connect(database.dsn)
        try:
            partners = await conn.fetchval("SELECT count(*) FROM partners")
            tenants = await conn.fetchval("SELECT count(*) FROM tenants")
        finally:
            await conn.close()
        return f"restore: {dump} loaded: {partners} partners, {tenants} tenants"
    finally:
        database.stop()


def _database_name(database: Database) -> str:
    return unquote(urlsplit(database.dsn).path.lstrip("/")) or "postgres"


def dsn(config: Config) -> str:
    """The database's DSN: ``database.dsn``, or the running embedded server's."""
    if config.database.dsn:
        return config.database.dsn
    embedded = EmbeddedPostgres(config.data_path / "postgres")
    if embedded.running_port() is None:
        raise AdminError("dsn: the embedded PostgreSQL is not running (start the daemon: its port is chosen "
                         "at each start)")
    return embedded.dsn(DATABASE_NAME)


def platform_token(config: Config, *, rotate: bool) -> str:
    """The platform operator's credential (docs/platform.md), created on first use."""
    if config.http.platform_token:
        if rotate:
            raise AdminError("platform-token: http.platform_token is set in the configuration: "
                             "change it there")
        return config.http.platform_token
    path = config.data_path / "secrets" / PLATFORM_TOKEN
    if rotate:
        path.unlink(missing_ok=True)
    return install_secret(config.data_path, PLATFORM_TOKEN)


@dataclass(frozen=True)
class PartnerRow:
    id: str
    name: str
    tier: str
    status: str
    tenants: int
    balance_micros: int
    created: str


async def partners(config: Config) -> list[PartnerRow]:
    database = await open_database(config)
    try:
        conn = await asyncpg.connect(database.dsn)
        try:
            has_status = await conn.fetchval(
                "SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'partners' AND column_name = 'status'")
            rows = await conn.fetch(f"""
                SELECT p.id, p.name, p.tier, {'p.status' if has_status else "'ACTIVE'"} AS status,
                       (SELECT count(*) FROM tenants t WHERE t.partner_id = p.id) AS tenants,
                       COALESCE(w.balance, 0) AS balance, p.created_at
                FROM partners p LEFT JOIN partner_wallets w ON w.partner_id = p.id
                ORDER BY p.created_at, p.id""")
        finally:
            await conn.close()
    finally:
        database.stop()
    return [PartnerRow(r["id"], r["name"], r["tier"], r["status"], r["tenants"], r["balance"],
                       r["created_at"].date().isoformat()) for r in rows]


async def adjust_wallet(config: Config, partner_id: str, amount_micros: int, *, reason: str,
                        reference: str) -> str:
    """A manual adjustment, idempotent by ``reference`` (the ledger's "adjust:<reference>")."""
    if not reason.strip():
        raise AdminError("wallet adjust: --reason must say why")
    if amount_micros == 0:
        raise AdminError("wallet adjust: the amount must not be 0")
    database = await open_database(config)
    try:
        conn = await asyncpg.connect(database.dsn)
        try:
            async with conn.transaction():
                if await conn.fetchval("SELECT 1 FROM partners WHERE id = $1", partner_id) is None:
                    raise AdminError(f"wallet adjust: no partner {partner_id}")
                posted = await wallet_store.post(conn, Entry(
                    partner_id, EntryKind.MANUAL_ADJUSTMENT, amount_micros, f"adjust:{reference}",
                    note=f"operator (controlplane wallet adjust): {reason.strip()}"))
        finally:
            await conn.close()
    finally:
        database.stop()
    what = "posted" if posted.created else "already posted (same reference), nothing changed"
    return f"wallet adjust: entry {posted.entry_id} {what}; balance {posted.balance_micros} micros"


def print_partners(rows: list[PartnerRow]) -> None:
    header = ("id", "name", "tier", "status", "tenants", "balance_micros", "created")
    table = [header, *[(r.id, r.name, r.tier, r.status, str(r.tenants), str(r.balance_micros), r.created)
                       for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows)} partners", file=sys.stderr)


async def render_edge(config: Config, *, address: str, sip_port: int, rpc_port: int,
                      carrier: tuple[str, ...], work_dir: str, out: Path) -> str:
    """Write Kamailio's configuration for this database's nodes under ``out/etc``; the paths written."""
    from controlplane.nodes.edge import EdgeInvalid, EdgeSettings, pg_target
    from controlplane.nodes.edge_files import edge_files, write_edge_files

    database = await open_database(config)
    try:
        edge = EdgeSettings(address=address, sip_port=sip_port, rpc_port=rpc_port,
                            database=pg_target(database.dsn), carrier_sources=carrier, work_dir=work_dir)
    except EdgeInvalid as exc:
        raise AdminError(str(exc)) from None
    conn = await asyncpg.connect(database.dsn)
    try:
        files = await edge_files(conn, edge)
    finally:
        await conn.close()
    return "\n".join(str(p) for p in write_edge_files(out / "etc", files))
