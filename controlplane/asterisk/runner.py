"""Run Asterisk for the control plane: a local root filesystem, a container, or someone else's.

Three ways, one synchronous API (the CLI and pytest call it directly; the daemon
through ``asyncio.to_thread``):

- ``local``: the Debian root filesystem built by ``asterisk/build-rootfs.sh``,
  ``chroot``-ed. Each instance owns ``<rootfs>/srv/controlplane/<instance>/``
  (``etc run log spool db``), so a developer's daemon and test runs share one
  root filesystem on different ports.
- ``container``: the image from ``asterisk/Dockerfile`` with host networking; the
  instance directory is bind-mounted from ``<data_dir>/asterisk/instances/<instance>``.
- ``external``: nothing is started; status probes ARI, ``cli`` goes through AMI.

``auto`` (the default) picks ``container`` when a Docker engine answers, else ``local``.

The configuration is rendered from the templates in ``asterisk/etc/``: every
``{{name}}`` is replaced (Asterisk's own ``${VAR}`` syntax is left alone).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from controlplane.asterisk.credentials import AsteriskCredentials, resolve_credentials
from controlplane.config import AsteriskRunMode, Config

__all__ = [
    "AsteriskError", "AsteriskRunner", "AsteriskStatus", "ContainerRunner", "ExternalRunner",
    "LocalRunner", "ami_command", "default_rootfs", "docker_available", "probe_ari", "recipe_dir",
    "render", "render_config", "runner_for", "template_values",
]

# Files the daemon owns after the first start: created from the template once, never overwritten.
SEED_ONLY = frozenset({"extensions_tenants.conf", "res_pgsql.conf"})
INSTANCE_ROOT = PurePosixPath("/srv/controlplane")
INSTANCE_SUBDIRS = ("etc", "run", "log", "spool", "spool/cache", "db")
IMAGE = "controlplane-asterisk:22"
STOP_TIMEOUT = 10.0
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# Values are written into Asterisk config lines: ';' starts a comment, brackets a section.
_UNSAFE_VALUE = re.compile(r"[;\[\]\s\"'\\]")
_ASTERISK = "/usr/sbin/asterisk"
_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d ")  # a logger line, also written to messages.log


class AsteriskError(Exception):
    """Asterisk could not be started, stopped or reached; the message carries the log tail."""


@dataclass(frozen=True)
class AsteriskStatus:
    running: bool
    pid: int | None
    detail: str
    mode: str = "local"
    instance: str = "default"
    host: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    ami_port: int = 5038
    ari: bool = False  # ARI answered GET /ari/asterisk/info with our credentials
    uptime: float | None = None  # seconds since the process started
    log_dir: Path | None = None


class AsteriskRunner(Protocol):
    mode: str
    log_dir: Path | None  # None for external: its logs are not ours
    etc_dir: Path | None  # where the daemon writes extensions_tenants.conf; None for external

    def up(self) -> AsteriskStatus: ...
    def down(self) -> None: ...
    def status(self) -> AsteriskStatus: ...
    def cli(self, command: str, timeout: float = 30.0) -> str: ...
    def kill(self) -> None: ...


def runner_for(cfg: Config, *, extra_files: Mapping[str, str] | None = None) -> AsteriskRunner:
    """The runner ``cfg.asterisk.run`` asks for (``auto``: container if Docker answers, else local).

    ``extra_files`` are dropped into the instance's etc directory beside the base
    configuration (rendered with the same placeholders), e.g. ``pjsip_extra.conf``,
    which ``pjsip.conf`` includes when present. An external Asterisk ignores them.
    """
    mode = cfg.asterisk.run
    if mode == AsteriskRunMode.AUTO:
        mode = AsteriskRunMode.CONTAINER if docker_available() else AsteriskRunMode.LOCAL
    if mode == AsteriskRunMode.LOCAL:
        return LocalRunner(cfg, extra_files=extra_files)
    if mode == AsteriskRunMode.CONTAINER:
        return ContainerRunner(cfg, extra_files=extra_files)
    return ExternalRunner(cfg)


# --------------------------------------------------------------------------- rendering (pure)

def recipe_dir() -> Path:
    """The ``asterisk/`` directory of the repository (templates, Dockerfile, build script)."""
    env = os.environ.get("CONTROLPLANE_ASTERISK_RECIPE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "asterisk"


def default_rootfs() -> Path:
    """Where build-rootfs.sh builds by default (same variables, same order)."""
    env = os.environ.get("CONTROLPLANE_ASTERISK_ROOTFS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "controlplane" / "asterisk-rootfs"


def template_values(cfg: Config, creds: AsteriskCredentials, *, moddir: str) -> dict[str, str]:
    a = cfg.asterisk
    values = {
        "instance": a.instance,
        "instance_dir": str(INSTANCE_ROOT / a.instance),
        "moddir": moddir,
        "sip_port": str(a.sip_port),
        "http_port": str(a.http_port),
        "ami_port": str(a.ami_port),
        "ari_user": creds.ari_user,
        "ari_password": creds.ari_password,
        "ami_user": creds.ami_user,
        "ami_password": creds.ami_password,
        "app": a.app,
    }
    for key, value in values.items():
        if not value or _UNSAFE_VALUE.search(value):
            shown = "***" if "password" in key else repr(value)
            raise AsteriskError(f"asterisk.{key}: {shown} cannot go into Asterisk's configuration "
                                "(empty, or contains whitespace, quotes, ';', '[', ']' or '\\')")
    return values


def render(text: str, values: Mapping[str, str], *, name: str = "template") -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise AsteriskError(f"{name}: unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def render_config(template_dir: Path, values: Mapping[str, str],
                  extra_files: Mapping[str, str] | None = None) -> dict[str, str]:
    """File name -> rendered text for every template (``*.conf``) plus the extra files."""
    # Bytes that are not UTF-8 (Debian's sample configs have Latin-1) pass through untouched.
    files = {path.name: render(path.read_text("utf-8", "surrogateescape"), values, name=path.name)
             for path in sorted(template_dir.glob("*.conf"))}
    if "asterisk.conf" not in files:
        raise AsteriskError(f"{template_dir}: no asterisk.conf template")
    for name, text in (extra_files or {}).items():
        if "/" in name or name.startswith(".") or not name.endswith(".conf"):
            raise AsteriskError(f"extra file {name!r}: a plain *.conf file name is required")
        if name in files and name not in SEED_ONLY:
            raise AsteriskError(f"extra file {name!r} would replace the base configuration")
        files[name] = render(text, values, name=name)
    return files


def write_config(etc_dir: Path, files: Mapping[str, str], extra_names: set[str]) -> None:
    """Write the rendered files; seed-only files only when missing; drop stale extras."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    marker = etc_dir / ".controlplane-extra"
    previous = set(marker.read_text().split()) if marker.exists() else set()
    for name in previous - extra_names:
        (etc_dir / name).unlink(missing_ok=True)
    for name, text in files.items():
        target = etc_dir / name
        # A seed file the caller supplies (the daemon's real DSN) always wins over the seed.
        if name in SEED_ONLY and name not in extra_names and target.exists():
            continue
        tmp = target.with_name(f".{name}.tmp")
        # Credentials are inside: nobody but root reads the instance configuration.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(text)
        os.replace(tmp, target)
    marker.write_text("".join(f"{n}\n" for n in sorted(extra_names)))


# --------------------------------------------------------------------------- probes

def probe_ari(host: str, port: int, user: str | None, password: str | None,
              timeout: float = 2.0) -> tuple[int | None, str]:
    """(HTTP status, detail) of GET /ari/asterisk/info; (None, reason) when nothing answers."""
    request = urllib.request.Request(f"http://{host}:{port}/ari/asterisk/info")
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason
    except (OSError, urllib.error.URLError) as exc:
        return None, str(getattr(exc, "reason", exc))


def ami_command(host: str, port: int, user: str, secret: str, command: str,
                timeout: float = 10.0) -> str:
    """Run a CLI command through AMI's Command action (for an Asterisk we cannot exec into)."""
    def send(sock: socket.socket, **headers: str) -> None:
        sock.sendall("".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n")

    def read_message(stream: BinaryIO) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        while True:
            raw = stream.readline()
            if not raw:
                raise AsteriskError(f"AMI {host}:{port}: connection closed")
            line = raw.decode(errors="replace").rstrip("\r\n")
            if not line:
                if lines:
                    return lines
                continue
            key, _, value = line.partition(":")
            lines.append((key.strip(), value.strip() if key != "Output" else value[1:]))

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            stream = sock.makefile("rb")
            stream.readline()  # banner: "Asterisk Call Manager/x.y.z"
            send(sock, Action="Login", Username=user, Secret=secret, Events="off", ActionID="login")
            reply = dict(read_message(stream))
            if reply.get("Response") != "Success":
                raise AsteriskError(f"AMI {host}:{port}: login refused ({reply.get('Message', '')})")
            send(sock, Action="Command", Command=command, ActionID="cmd")
            while True:
                message = read_message(stream)
                headers = dict(message)
                if headers.get("ActionID") == "cmd":
                    break
            output = "".join(f"{value}\n" for key, value in message if key == "Output")
            # An unknown command is "Response: Error" with the CLI's text as output;
            # return that text, as `asterisk -rx` does.
            if headers.get("Response") != "Success" and not output:
                raise AsteriskError(f"AMI Command {command!r}: {headers.get('Message', 'failed')}")
            send(sock, Action="Logoff", ActionID="bye")
            return output
    except OSError as exc:
        raise AsteriskError(f"AMI {host}:{port}: {exc}") from None


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers (the SDK's ping, else ``docker info``)."""
    try:
        import docker  # type: ignore[import-not-found]  # optional: the "container" extra
    except ImportError:
        pass
    else:
        try:
            return bool(docker.from_env(timeout=timeout).ping())
        except Exception:  # noqa: BLE001 - any failure means "no engine"
            return False
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, timeout=timeout + 3).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _ports_free(host: str, tcp: list[int], udp: list[int]) -> list[str]:
    """The ports (as 'tcp/5060') somebody else already holds on ``host``."""
    busy = []
    for kind, ports, name in ((socket.SOCK_STREAM, tcp, "tcp"), (socket.SOCK_DGRAM, udp, "udp")):
        for port in ports:
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    busy.append(f"{name}/{port}")
    return busy


def _wait_ports_free(host: str, tcp: list[int], udp: list[int], timeout: float = 3.0) -> list[str]:
    """Like _ports_free, allowing a just-stopped Asterisk a moment to release its sockets."""
    deadline = time.monotonic() + timeout
    while (busy := _ports_free(host, tcp, udp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return busy


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _log_tails(log_dir: Path) -> str:
    """messages.log's tail, plus what only the console saw (before the logger was up, crashes)."""
    parts = []
    console = [line for line in _tail(log_dir / "console.log", 200).splitlines()
               if not _LOG_LINE.match(line)][-15:]
    if console:
        parts.append(f"--- {log_dir / 'console.log'} (not in messages.log) ---\n" + "\n".join(console))
    messages = _tail(log_dir / "messages.log")
    if messages:
        parts.append(f"--- {log_dir / 'messages.log'} (tail) ---\n{messages}")
    return "\n".join(parts) or f"(no log in {log_dir})"


def _describe(mode: str, running: bool, pid: int | None, ari: bool, uptime: float | None,
              cfg: Config, extra: str = "") -> str:
    a = cfg.asterisk
    ports = f"sip {a.host}:{a.sip_port} udp+tcp, ari http://{a.host}:{a.http_port}, ami {a.host}:{a.ami_port}"
    if not running:
        return f"{mode} instance {a.instance!r}: not running{extra} ({ports})"
    up = f", up {uptime:.0f}s" if uptime is not None else ""
    who = f"pid {pid}{up}, " if pid else ""
    return (f"{mode} instance {a.instance!r}: running ({who}ARI {'answering' if ari else 'not answering'})"
            f"{extra}; {ports}")


# --------------------------------------------------------------------------- local rootfs

class LocalRunner:
    """Asterisk in a chroot of the cached Debian root filesystem.

    Started in the foreground (``-f``) under a detached shell, not daemonised:
    we get the real pid at once (no pid-file race), and whatever Asterisk prints
    before its logger is up (bad config, missing libraries) lands in
    ``log/console.log`` instead of vanishing with a daemon's closed stdout. The
    shell exits immediately, so Asterisk belongs to no caller (it survives the
    CLI that started it and is never left as our zombie), and it runs in its own
    session, so a Ctrl-C in the terminal does not kill it.
    """

    mode = "local"

    def __init__(self, cfg: Config, *, extra_files: Mapping[str, str] | None = None,
                 rootfs: Path | None = None, template_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.template_dir = template_dir or recipe_dir() / "etc"
        a = cfg.asterisk
        self.rootfs = Path(rootfs or a.rootfs or default_rootfs()).expanduser().resolve()
        self.inner_dir = INSTANCE_ROOT / a.instance           # path inside the chroot
        self.instance_dir = self.rootfs / str(self.inner_dir).lstrip("/")
        self.etc_dir: Path | None = self.instance_dir / "etc"
        self.log_dir: Path | None = self.instance_dir / "log"
        self.run_dir = self.instance_dir / "run"
        self.inner_conf = str(self.inner_dir / "etc" / "asterisk.conf")
        self.extra_files = dict(extra_files or {})
        self._creds: AsteriskCredentials | None = None

    # -- public API

    def up(self) -> AsteriskStatus:
        self._require_root()
        self._ensure_rootfs()
        deadline = time.monotonic() + self.cfg.asterisk.boot_timeout
        with self._locked():
            pid = self._pid()
            spawned = pid is None
            if spawned:
                self._prepare()
                pid = self._spawn()
            try:
                self._wait_booted(pid, deadline)
            except AsteriskError:
                if spawned:  # a half-booted Asterisk we started is no use to anyone: stop it
                    self._stop(pid)
                raise
        return self.status()

    def down(self) -> None:
        if not self.instance_dir.exists():
            return
        with self._locked():
            pid = self._pid()
            if pid is not None:
                self._stop(pid)
            self._clear_stale()

    def status(self) -> AsteriskStatus:
        pid = self._pid()
        running = pid is not None
        uptime = _proc_uptime(pid) if pid else None
        ari = False
        if running:
            creds = self.credentials()
            code, _ = probe_ari(self.cfg.asterisk.host, self.cfg.asterisk.http_port,
                                creds.ari_user, creds.ari_password, timeout=1.0)
            ari = code == 200
        return self._status(running, pid, ari, uptime)

    def cli(self, command: str, timeout: float = 30.0) -> str:
        try:
            result = self._asterisk_rx(command, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AsteriskError(f"asterisk -rx {command!r}: no answer in {timeout:.0f} s") from None
        if result.returncode != 0:
            raise AsteriskError(f"asterisk -rx {command!r} failed: {(result.stdout + result.stderr).strip()}")
        return result.stdout

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 5.0)
        # Leave the pid file and control socket behind, as a real crash would.

    def credentials(self) -> AsteriskCredentials:
        if self._creds is None:
            self._creds = resolve_credentials(self.cfg)
        return self._creds

    # -- start

    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise AsteriskError("the local Asterisk runner needs root (it uses chroot); "
                                "run as root or set asterisk.run to container/external")

    def _ensure_rootfs(self) -> None:
        marker = self.rootfs / ".controlplane-rootfs-ready"
        if marker.exists():
            return
        self.rootfs.parent.mkdir(parents=True, exist_ok=True)
        with open(self.rootfs.with_name(self.rootfs.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the script starts with rm -rf
            if not marker.exists():
                self._build_rootfs()

    def _build_rootfs(self) -> None:
        script = recipe_dir() / "build-rootfs.sh"
        if not script.exists():
            raise AsteriskError(f"no Asterisk root filesystem at {self.rootfs} and no {script} to build it "
                                "(set CONTROLPLANE_ASTERISK_RECIPE_DIR)")
        log = self.cfg.data_path / "asterisk" / "build-rootfs.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            done = subprocess.run(["bash", str(script), str(self.rootfs)], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=1800)
        if done.returncode != 0:
            raise AsteriskError(f"building the Asterisk root filesystem failed (see {log}):\n{_tail(log)}")

    def _moddir(self) -> str:
        found = sorted(self.rootfs.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise AsteriskError(f"{self.rootfs}: no usr/lib/*/asterisk/modules; rebuild the root filesystem")
        return "/" + str(found[0].relative_to(self.rootfs))

    def _prepare(self) -> None:
        a = self.cfg.asterisk
        busy = _wait_ports_free(a.host, [a.sip_port, a.http_port, a.ami_port], [a.sip_port])
        if busy:
            raise AsteriskError(f"{self.mode} instance {a.instance!r}: port(s) {', '.join(busy)} on {a.host} "
                                "already in use; pick other asterisk.*_port values")
        for sub in INSTANCE_SUBDIRS:
            (self.instance_dir / sub).mkdir(parents=True, exist_ok=True)
        self.instance_dir.chmod(0o700)
        values = template_values(self.cfg, self.credentials(), moddir=self._moddir())
        files = render_config(self.template_dir, values, self.extra_files)
        write_config(self.instance_dir / "etc", files, set(self.extra_files))
        _ensure_hosts(self.rootfs / "etc" / "hosts")
        self._clear_stale()
        console = self.instance_dir / "log" / "console.log"
        if console.exists():
            console.replace(console.with_name("console.log.1"))

    def _spawn(self) -> int:
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        argv = [chroot, str(self.rootfs), _ASTERISK, "-C", self.inner_conf, "-f", "-n"]
        script = 'exec </dev/null; "$@" >>"$CP_CONSOLE_LOG" 2>&1 & echo $!'
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
               "CP_CONSOLE_LOG": str(self.instance_dir / "log" / "console.log")}
        done = subprocess.run(["/bin/sh", "-c", script, "sh", *argv], env=env, capture_output=True,
                              text=True, start_new_session=True, timeout=10)
        try:
            pid = int(done.stdout.strip())
        except ValueError:
            why = done.stderr.strip() or done.stdout.strip()
            raise AsteriskError(f"could not start Asterisk: {why}") from None
        record = {"pid": pid, "start": _proc_start(pid), "started_at": time.time()}
        (self.run_dir / "runner.json").write_text(json.dumps(record) + "\n")
        return pid

    def _wait_booted(self, pid: int, deadline: float) -> None:
        a = self.cfg.asterisk
        ctl = self.run_dir / "asterisk.ctl"
        booted = False
        while True:
            if not _alive(pid):
                raise AsteriskError(f"Asterisk ({self.mode} instance {a.instance!r}) exited during boot\n"
                                    + _log_tails(self.instance_dir / "log"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AsteriskError(
                    f"Asterisk ({self.mode} instance {a.instance!r}) not ready within {a.boot_timeout:.0f} s "
                    f"({'booted but ARI not answering' if booted else 'not fully booted'})\n"
                    + _log_tails(self.instance_dir / "log"))
            if not booted and ctl.exists():
                try:
                    result = self._asterisk_rx("core waitfullybooted", timeout=remaining)
                    booted = result.returncode == 0 and "fully booted" in result.stdout
                except subprocess.TimeoutExpired:
                    continue
            if booted:
                creds = self.credentials()
                code, _ = probe_ari(a.host, a.http_port, creds.ari_user, creds.ari_password,
                                    timeout=min(2.0, max(remaining, 0.1)))
                if code == 200:
                    return
                if code == 401:
                    raise AsteriskError(f"Asterisk ({self.mode} instance {a.instance!r}) refuses our ARI "
                                        "credentials: it was started with other settings; down() then up()")
            time.sleep(0.05)

    # -- process bookkeeping

    def _pid(self) -> int | None:
        """The live Asterisk of this instance: our record first, else a scan of /proc."""
        try:
            record = json.loads((self.run_dir / "runner.json").read_text())
            pid, start = int(record["pid"]), record.get("start")
            if _alive(pid) and (start is None or _proc_start(pid) == start) and self._is_ours(pid):
                return pid
        except (OSError, ValueError, KeyError, TypeError):
            pass
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name)) and _alive(int(entry.name)):
                return int(entry.name)
        return None

    def _is_ours(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        args = [arg.decode(errors="replace") for arg in argv if arg]
        if not args or os.path.basename(args[0]) != "asterisk" or self.inner_conf not in args:
            return False
        return not any(arg.startswith("-r") or arg.startswith("-R") or arg == "-x" for arg in args[1:])

    def _stop(self, pid: int) -> None:
        """`core stop now`, then SIGTERM, then SIGKILL, each after a timeout."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._asterisk_rx("core stop now", timeout=STOP_TIMEOUT)
        if not self._wait_gone(pid, STOP_TIMEOUT):
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(pid, 3.0):
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(pid, 5.0)

    def _clear_stale(self) -> None:
        for name in ("asterisk.ctl", "asterisk.pid", "runner.json"):
            (self.run_dir / name).unlink(missing_ok=True)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One up/down at a time per instance, across processes (daemon, CLI, tests)."""
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        with open(self.instance_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _asterisk_rx(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        return subprocess.run([chroot, str(self.rootfs), _ASTERISK, "-C", self.inner_conf, "-rx", command],
                              capture_output=True, text=True, timeout=timeout,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})

    def _status(self, running: bool, pid: int | None, ari: bool, uptime: float | None) -> AsteriskStatus:
        a = self.cfg.asterisk
        return AsteriskStatus(running=running, pid=pid, mode=self.mode, instance=a.instance, host=a.host,
                              sip_port=a.sip_port, http_port=a.http_port, ami_port=a.ami_port, ari=ari,
                              uptime=uptime, log_dir=self.log_dir,
                              detail=_describe(self.mode, running, pid, ari, uptime, self.cfg,
                                               f", logs in {self.log_dir}"))


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()  # fields from #3 (state) on


def _alive(pid: int) -> bool:
    """True while any thread of ``pid`` runs.

    After SIGKILL the main thread turns zombie before the other threads have
    exited, and until the last one has, the process still holds its sockets (the
    control socket even accepts connections). Only when every thread is gone is
    the process really dead.
    """
    fields = _proc_stat(pid)
    if fields is None:
        return False
    try:
        tasks = [entry.name for entry in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return fields[0] not in ("Z", "X")
    for tid in tasks:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if raw[raw.rfind(")") + 2] not in ("Z", "X"):
            return True
    return False


def _proc_start(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None  # field #22: start time in clock ticks after boot


def _proc_uptime(pid: int) -> float | None:
    start = _proc_start(pid)
    if start is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, since_boot - start / os.sysconf("SC_CLK_TCK"))
    return None


def _ensure_hosts(hosts: Path) -> None:
    """Asterisk blocks on DNS look-ups of its own host name unless /etc/hosts knows it."""
    name = socket.gethostname()
    try:
        text = hosts.read_text()
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        tokens = line.split("#", 1)[0].split()
        if name in tokens[1:]:
            return
    kept = [line for line in text.splitlines() if not line.split("#", 1)[0].split()[:1] == ["127.0.0.1"]]
    hosts.write_text(f"127.0.0.1 localhost {name}\n" + "".join(f"{line}\n" for line in kept))


# --------------------------------------------------------------------------- container

class ContainerRunner:
    """Asterisk in a container (``asterisk/Dockerfile``), host networking, driven by the docker CLI.

    The instance directory is bind-mounted from ``<data_dir>/asterisk/instances/<instance>``
    so logs and the daemon-written dialplan are on the host; the entrypoint renders
    the same templates from ``CONTROLPLANE_ASTERISK__*`` variables.
    """

    mode = "container"

    def __init__(self, cfg: Config, *, extra_files: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        a = cfg.asterisk
        self.name = f"controlplane-asterisk-{a.instance}"
        self.image = os.environ.get("CONTROLPLANE_ASTERISK_IMAGE", IMAGE)
        self.inner_dir = INSTANCE_ROOT / a.instance
        self.instance_dir = cfg.data_path / "asterisk" / "instances" / a.instance
        self.etc_dir: Path | None = self.instance_dir / "etc"
        self.log_dir: Path | None = self.instance_dir / "log"
        self.inner_conf = str(self.inner_dir / "etc" / "asterisk.conf")
        self.extra_files = dict(extra_files or {})
        self._creds: AsteriskCredentials | None = None

    def credentials(self) -> AsteriskCredentials:
        if self._creds is None:
            self._creds = resolve_credentials(self.cfg)
        return self._creds

    def up(self) -> AsteriskStatus:
        a = self.cfg.asterisk
        deadline = time.monotonic() + a.boot_timeout
        started = not self._running()
        if started:
            self._docker("rm", "-f", self.name, check=False)
            self._ensure_image()
            busy = _wait_ports_free(a.host, [a.sip_port, a.http_port, a.ami_port], [a.sip_port])
            if busy:
                raise AsteriskError(f"container instance {a.instance!r}: port(s) {', '.join(busy)} "
                                    f"on {a.host} already in use")
            for sub in INSTANCE_SUBDIRS:
                (self.instance_dir / sub).mkdir(parents=True, exist_ok=True)
            self.instance_dir.chmod(0o700)
            creds = self.credentials()
            # The entrypoint renders the base templates; extras are rendered here.
            values = template_values(self.cfg, creds, moddir="/usr/lib/x86_64-linux-gnu/asterisk/modules")
            for name in self.extra_files:
                if "/" in name or name.startswith(".") or not name.endswith(".conf"):
                    raise AsteriskError(f"extra file {name!r}: a plain *.conf file name is required")
            extras = {name: render(text, values, name=name) for name, text in self.extra_files.items()}
            write_config(self.instance_dir / "etc", extras, set(extras))
            console = self.instance_dir / "log" / "console.log"
            if console.exists():
                console.replace(console.with_name("console.log.1"))
            env = {
                "CONTROLPLANE_ASTERISK__INSTANCE": a.instance,
                "CONTROLPLANE_ASTERISK__SIP_PORT": str(a.sip_port),
                "CONTROLPLANE_ASTERISK__HTTP_PORT": str(a.http_port),
                "CONTROLPLANE_ASTERISK__AMI_PORT": str(a.ami_port),
                "CONTROLPLANE_ASTERISK__ARI_USER": creds.ari_user,
                "CONTROLPLANE_ASTERISK__ARI_PASSWORD": creds.ari_password,
                "CONTROLPLANE_ASTERISK__AMI_USER": creds.ami_user,
                "CONTROLPLANE_ASTERISK__AMI_PASSWORD": creds.ami_password,
                "CONTROLPLANE_ASTERISK__APP": a.app,
            }
            args = ["run", "-d", "--name", self.name, "--network", "host", "--init",
                    "--label", "controlplane.asterisk.instance=" + a.instance,
                    "-v", f"{self.instance_dir}:{self.inner_dir}"]
            for key in env:
                args += ["-e", key]  # values via the environment, not the process list
            self._docker(*args, self.image, env=env)
        try:
            self._wait_booted(deadline)
        except AsteriskError:
            if started:  # the error carries the logs; leave no half-booted container behind
                self._docker("rm", "-f", self.name, check=False)
            raise
        return self.status()

    def down(self) -> None:
        if self._running():
            with contextlib.suppress(AsteriskError, subprocess.TimeoutExpired):
                self._exec_rx("core stop now", timeout=STOP_TIMEOUT)
            self._docker("stop", "-t", str(int(STOP_TIMEOUT)), self.name, check=False)
        self._docker("rm", "-f", self.name, check=False)

    def status(self) -> AsteriskStatus:
        a = self.cfg.asterisk
        state = self._inspect()
        running = bool(state and state.get("Running"))
        pid = int(state["Pid"]) if running and state and state.get("Pid") else None
        uptime = _since(state.get("StartedAt")) if running and state else None
        ari = False
        if running:
            creds = self.credentials()
            ari = probe_ari(a.host, a.http_port, creds.ari_user, creds.ari_password, timeout=1.0)[0] == 200
        return AsteriskStatus(running=running, pid=pid, mode=self.mode, instance=a.instance, host=a.host,
                              sip_port=a.sip_port, http_port=a.http_port, ami_port=a.ami_port, ari=ari,
                              uptime=uptime, log_dir=self.log_dir,
                              detail=_describe(self.mode, running, pid, ari, uptime, self.cfg,
                                               f", container {self.name}, logs in {self.log_dir}"))

    def cli(self, command: str, timeout: float = 30.0) -> str:
        try:
            result = self._exec_rx(command, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AsteriskError(f"asterisk -rx {command!r}: no answer in {timeout:.0f} s") from None
        if result.returncode != 0:
            raise AsteriskError(f"asterisk -rx {command!r} failed: {(result.stdout + result.stderr).strip()}")
        return result.stdout

    def kill(self) -> None:
        if self._running():
            self._docker("kill", "-s", "KILL", self.name, check=False)
            deadline = time.monotonic() + 10.0
            while self._running() and time.monotonic() < deadline:
                time.sleep(0.1)

    # -- helpers

    def _docker(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        if shutil.which("docker") is None:
            raise AsteriskError("the container runner needs the docker CLI on PATH")
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                                env=full_env)
        if check and result.returncode != 0:
            raise AsteriskError(f"docker {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def _inspect(self) -> dict[str, object] | None:
        result = self._docker("inspect", "--format", "{{json .State}}", self.name, check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def _running(self) -> bool:
        state = self._inspect()
        return bool(state and state.get("Running"))

    def _ensure_image(self) -> None:
        if self._docker("image", "inspect", self.image, check=False).returncode == 0:
            return
        recipe = recipe_dir()
        self._docker("build", "-t", self.image, "-f", str(recipe / "Dockerfile"), str(recipe), timeout=1800)

    def _exec_rx(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return self._docker("exec", self.name, _ASTERISK, "-C", self.inner_conf, "-rx", command,
                            check=False, timeout=timeout)

    def _wait_booted(self, deadline: float) -> None:
        a = self.cfg.asterisk
        booted = False
        while True:
            if not self._running():
                logs = self._docker("logs", "--tail", "30", self.name, check=False)
                raise AsteriskError(f"Asterisk container {self.name} exited during boot\n"
                                    f"{logs.stdout}{logs.stderr}\n" + _log_tails(self.instance_dir / "log"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AsteriskError(f"Asterisk container {self.name} not ready within "
                                    f"{a.boot_timeout:.0f} s\n"
                                    + _log_tails(self.instance_dir / "log"))
            if not booted:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    result = self._exec_rx("core waitfullybooted", timeout=remaining)
                    booted = result.returncode == 0 and "fully booted" in result.stdout
            if booted:
                creds = self.credentials()
                if probe_ari(a.host, a.http_port, creds.ari_user, creds.ari_password, timeout=2.0)[0] == 200:
                    return
            time.sleep(0.1)


def _since(started_at: object) -> float | None:
    if not isinstance(started_at, str):
        return None
    text = re.sub(r"(\.\d{6})\d*", r"\1", started_at).replace("Z", "+00:00")
    try:
        return max(0.0, (datetime.now(timezone.utc) - datetime.fromisoformat(text)).total_seconds())
    except ValueError:
        return None


# --------------------------------------------------------------------------- external

class ExternalRunner:
    """Someone else runs Asterisk: up() only waits for ARI; cli() goes through AMI."""

    mode = "external"
    log_dir: Path | None = None
    etc_dir: Path | None = None

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._creds: AsteriskCredentials | None = None

    def credentials(self) -> AsteriskCredentials:
        if self._creds is None:
            self._creds = resolve_credentials(self.cfg)
        return self._creds

    def up(self) -> AsteriskStatus:
        a = self.cfg.asterisk
        deadline = time.monotonic() + a.boot_timeout
        creds = self.credentials()
        while True:
            code, why = probe_ari(a.host, a.http_port, creds.ari_user, creds.ari_password, timeout=2.0)
            if code == 200:
                return self.status()
            if code == 401:
                raise AsteriskError(f"external Asterisk at {a.host}:{a.http_port} "
                                    "refuses our ARI credentials")
            if time.monotonic() >= deadline:
                raise AsteriskError(f"external Asterisk: ARI at http://{a.host}:{a.http_port} not answering "
                                    f"within {a.boot_timeout:.0f} s ({code or why})")
            time.sleep(0.2)

    def down(self) -> None:
        """Not ours to stop."""

    def kill(self) -> None:
        raise AsteriskError("external Asterisk: not ours to kill")

    def status(self) -> AsteriskStatus:
        a = self.cfg.asterisk
        creds = self.credentials()
        code, why = probe_ari(a.host, a.http_port, creds.ari_user, creds.ari_password, timeout=1.0)
        running = code == 200
        extra = "" if running else f" (ARI: {code or why})"
        return AsteriskStatus(running=running, pid=None, mode=self.mode, instance=a.instance, host=a.host,
                              sip_port=a.sip_port, http_port=a.http_port, ami_port=a.ami_port, ari=running,
                              detail=_describe(self.mode, running, None, running, None, self.cfg, extra))

    def cli(self, command: str, timeout: float = 30.0) -> str:
        a = self.cfg.asterisk
        creds = self.credentials()
        return ami_command(a.host, a.ami_port, creds.ami_user, creds.ami_password, command, timeout=timeout)
