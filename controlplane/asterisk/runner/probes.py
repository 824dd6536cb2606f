"""Is anything there? ARI, AMI, a Docker engine, and who holds our ports."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import BinaryIO

from controlplane.asterisk.runner.interface import AsteriskError


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
        import docker  # optional: the "container" extra (untyped: ignored in [tool.mypy])
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


def ports_free(host: str, tcp: list[int], udp: list[int]) -> list[str]:
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


def wait_ports_free(host: str, tcp: list[int], udp: list[int], timeout: float = 3.0) -> list[str]:
    """Like ports_free, allowing a just-stopped Asterisk a moment to release its sockets."""
    deadline = time.monotonic() + timeout
    while (busy := ports_free(host, tcp, udp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return busy

