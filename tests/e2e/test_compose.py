"""The compose path, run: ``podman-compose up`` of compose/docker-compose.yml, Asterisk and
the daemon in containers (host network, PostgreSQL embedded in the daemon's data volume,
as the compose file says), then everything through the daemon's RPC and SIPp, the same
assertions as the local path: a tenant extension registers, an outbound call reaches
the carrier UAS with the dialled number and is rated, 911 reaches the emergency UAS
with the caller's registered DID, and the relay UAS from a tenant with no address.
The stack runs with the compose profile "edge": Kamailio from the same base image as
Asterisk, on the configuration `controlplane edge render` wrote (edge-config service),
must stay up and answer an OPTIONS sent to it.

Images are built by the compose file itself, from base images imported FROM scratch out
of debootstrap root filesystems (compose/build-base-images.sh): no registry is needed.
Layers and base images stay in podman's store, so a second run builds in seconds.
Budget in CI: 6 minutes for this module cold (base images imported), 2 warm
(docs/deployment.md). Never skipped in CI: missing tools fail it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from harness import unavailable
from tenants_e2e import call_scenario, finished, register_scenario, sipp, sipp_failure, uas_scenario

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose" / "docker-compose.yml"
CONTAINERS_CONF = REPO / "compose" / "containers.conf"
# Stable names: podman's layer cache makes the second build of the same tree a no-op.
DAEMON_IMAGE = "localhost/controlplane-compose-test:latest"
ASTERISK_IMAGE = "localhost/controlplane-asterisk-compose-test:latest"
KAMAILIO_IMAGE = "localhost/controlplane-kamailio-compose-test:latest"
# The one-shot service of the "edge" profile: exits 0 once it rendered the edge's files.
ONE_SHOT = "edge-config"
SERVICES = ("controlplane", "asterisk", ONE_SHOT, "kamailio")
TOLL_FREE = "18005550199"
DID = "+15015550177"
READY_SECONDS = 180.0
# The project's (test extra, PyPI) before any other on PATH: Debian 12's cannot run network_mode: host.
PODMAN_COMPOSE = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) \
    or shutil.which("podman-compose") or "podman-compose"


def _missing() -> list[str]:
    missing = [tool for tool in ("podman", "runc", "sipp", "debootstrap") if shutil.which(tool) is None]
    if shutil.which(PODMAN_COMPOSE) is None:
        missing.append("podman-compose")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


# Every port handed out to this stack: a port is only free until something binds it, and the
# services bind theirs much later, so two picks must never return the same number (the AGI
# listener once got the port already given to Kamailio).
_GIVEN: set[int] = set()


def _udp_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def _port() -> int:
    """A port free for both TCP and UDP (SIP listens on both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if port in _GIVEN:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            _GIVEN.add(port)
            return port


@dataclass
class Rpc:
    base: str
    service_token: str
    platform_token: str
    partner: str = ""

    def call(self, method: str, path: str, body: Any = None, *, platform: bool = False,
             content_type: str = "application/json", expect: tuple[int, ...] = (200, 201)) -> Any:
        data = None if body is None else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.platform_token if platform else self.service_token}"}
        if data is not None:
            headers["Content-Type"] = content_type
        if self.partner:
            headers["X-Partner-Id"] = self.partner
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        assert status in expect, f"{method} {path}: {status} {text}"
        return json.loads(text) if text else None


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    rpc: Rpc
    sip: SimpleNamespace
    carrier_port: int
    emergency_port: int
    relay_port: int
    edge_sip_port: int
    edge_rpc_port: int
    timings: dict[str, float] = field(default_factory=dict)
    tenant: str = ""
    passwords: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([PODMAN_COMPOSE, "-p", self.project, "-f", str(COMPOSE_FILE),
                                 "--profile", "edge", *args],
                                env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if check and result.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def logs(self) -> str:
        out = []
        for service in SERVICES:
            done = subprocess.run(["podman", "logs", "--tail", "40", f"{self.project}_{service}_1"],
                                  env=self.env, capture_output=True, text=True, timeout=30)
            out.append(f"--- {service}\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        return "\n".join(out)

    def phone(self, scenario: str, service: str, user: str | None = None, *, background: bool = False,
              port: int | None = None) -> Any:
        return sipp(self.sip, scenario, service, user=user, password=self.passwords.get(user or ""),  # type: ignore[arg-type]
                    background=background, port=port, timeout="60s")


def _timed(timings: dict[str, float], name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.monotonic()
    try:
        return fn(*args, **kwargs)
    finally:
        timings[name] = round(time.monotonic() - start, 1)


def _base_images(env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(["bash", str(REPO / "compose" / "build-base-images.sh")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"build-base-images.sh failed:\n{done.stderr[-3000:]}"
    return dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)


def _wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + READY_SECONDS
    last = ""
    while time.monotonic() < deadline:
        listed = subprocess.run(["podman", "ps", "-a", "--filter", f"label=io.podman.compose.project={stack.project}",
                                 "--filter", "status=exited", "--format", "{{.Names}} {{.ExitCode}}"],
                                env=stack.env, capture_output=True, text=True, timeout=30).stdout.splitlines()
        exited = [name for name, code in (line.split() for line in listed if line.strip())
                  if not (name == f"{stack.project}_{ONE_SHOT}_1" and code == "0")]
        if exited:
            raise AssertionError(f"{', '.join(exited)} exited during start-up\n{stack.logs()}")
        try:
            with urllib.request.urlopen(stack.rpc.base + "/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as err:
            last = f"{err.code} {err.read().decode()[:500]}"
        except OSError as err:
            last = repr(err)
        time.sleep(1.0)
    raise AssertionError(f"the daemon was not ready within {READY_SECONDS:.0f} s ({last})\n{stack.logs()}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    missing = _missing()
    if missing:
        message = f"the compose path needs {', '.join(missing)} (bash scripts/install.sh installs them)"
        unavailable(message)
    sip_port, http_port = _port(), _port()
    rtp_start = 30000 + 2 * secrets.randbelow(4500)
    service_token, platform_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    stack = Stack(project=f"cptest{os.getpid()}", env=env, rpc=Rpc(f"http://127.0.0.1:{http_port}",
                                                                   service_token, platform_token),
                  sip=SimpleNamespace(sip_port=sip_port), carrier_port=_udp_port(),
                  emergency_port=_udp_port(), relay_port=_udp_port(), edge_sip_port=_port(), edge_rpc_port=_port())
    env.update(_timed(stack.timings, "base_images", _base_images, env))
    env.update({
        "CONTROLPLANE_IMAGE": DAEMON_IMAGE, "ASTERISK_IMAGE": ASTERISK_IMAGE, "KAMAILIO_IMAGE": KAMAILIO_IMAGE,
        "KAMAILIO_SIP_PORT": str(stack.edge_sip_port),
        "KAMAILIO_RPC_PORT": str(stack.edge_rpc_port),
        "CONTROLPLANE_INSTANCE": "compose",
        "CONTROLPLANE_HTTP__PORT": str(http_port),
        "CONTROLPLANE_HTTP__SERVICE_TOKEN": service_token,
        "CONTROLPLANE_HTTP__PLATFORM_TOKEN": platform_token,
        "CONTROLPLANE_ASTERISK__SIP_PORT": str(sip_port),
        "CONTROLPLANE_ASTERISK__HTTP_PORT": str(_port()),
        "CONTROLPLANE_ASTERISK__AMI_PORT": str(_port()),
        "CONTROLPLANE_ASTERISK__RTP_START": str(rtp_start),
        "CONTROLPLANE_ASTERISK__RTP_END": str(rtp_start + 199),
        "CONTROLPLANE_LIMITS__AGI_PORT": str(_port()),
        "CONTROLPLANE_CARRIER__HOST": "127.0.0.1",
        "CONTROLPLANE_CARRIER__PORT": str(stack.carrier_port),
        "CONTROLPLANE_EMERGENCY__TRUNK_HOST": "127.0.0.1",
        "CONTROLPLANE_EMERGENCY__TRUNK_PORT": str(stack.emergency_port),
        "CONTROLPLANE_EMERGENCY__RELAY_HOST": "127.0.0.1",
        "CONTROLPLANE_EMERGENCY__RELAY_PORT": str(stack.relay_port),
        "CONTROLPLANE_LOGGING__FORMAT": "json",
    })
    _reap_stale(env)
    try:
        _timed(stack.timings, "build", stack.compose, "build")
        _timed(stack.timings, "up", stack.compose, "up", "-d", "--no-build")
        _timed(stack.timings, "ready", _wait_ready, stack)
        _timed(stack.timings, "provision", _provision, stack)
        yield stack
    finally:
        _timed(stack.timings, "down", stack.compose, "down", "-v", "-t", "10", timeout=300, check=False)
        print(f"\ncompose timings (s): {stack.timings}")


def _reap_stale(env: dict[str, str]) -> None:
    """Stacks of killed runs (``restart: unless-stopped`` keeps them up): their process is gone."""
    listed = subprocess.run(["podman", "ps", "-a", "--filter", "label=io.podman.compose.project",
                             "--format", '{{.ID}} {{index .Labels "io.podman.compose.project"}}'],
                            env=env, capture_output=True, text=True, timeout=30).stdout.split("\n")
    for line in filter(None, listed):
        container, project = line.split(" ", 1)
        pid = project.removeprefix("cptest")
        if project.startswith("cptest") and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["podman", "rm", "-f", "-v", container], env=env, capture_output=True, timeout=60)
    volumes = subprocess.run(["podman", "volume", "ls", "-q", "--filter", "label=io.podman.compose.project"],
                             env=env, capture_output=True, text=True, timeout=30).stdout.split()
    for volume in volumes:
        pid = volume.removeprefix("cptest").split("_", 1)[0]
        if volume.startswith("cptest") and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["podman", "volume", "rm", "-f", volume], env=env, capture_output=True, timeout=60)


def _provision(stack: Stack) -> None:
    """Through the RPC, as an operator and a partner would: partner, tenant, extension,
    retail prices, wallet credit, a DID bought from inventory with its E911 address."""
    rpc = stack.rpc
    rpc.partner = rpc.call("POST", "/v1/partners", {"name": "Compose Co", "tier": "BUSINESS"})["id"]
    tenant = rpc.call("POST", "/v1/tenants", {"name": "Acme", "billing_email": "ops@acme.test",
                                              "sip_prefix": "acme"})["id"]
    stack.tenant = tenant
    created = rpc.call("POST", f"/v1/tenants/{tenant}/extensions", {"number": "101", "display_name": "Desk"})
    stack.passwords[created["sip_username"]] = created["secrets"]["sip_password"]
    # A second tenant with no registered address: its 911 goes to the national relay.
    beta = rpc.call("POST", "/v1/tenants", {"name": "Beta", "billing_email": "ops@beta.test",
                                            "sip_prefix": "beta"})["id"]
    created_beta = rpc.call("POST", f"/v1/tenants/{beta}/extensions", {"number": "101", "display_name": "Desk"})
    stack.passwords[created_beta["sip_username"]] = created_beta["secrets"]["sip_password"]
    rpc.call("PUT", f"/v1/tenants/{tenant}/billing-profile", {
        "per_minute_micros": 50_000, "toll_free_per_minute_micros": 30_000,
        "min_seconds": 60, "increment_seconds": 6})
    rpc.call("POST", "/v1/wallet/credits", {"amount_micros": 100_000_000, "reference": "compose-test"},
             platform=True)
    rpc.call("POST", "/v1/number-inventory", f"number,state,city,rate_center\n{DID},AR,Little Rock,LTLROCK\n",
             platform=True, content_type="text/csv")
    bought = rpc.call("POST", "/v1/numbers/purchase", {"numbers": [DID]})
    did_id = bought["numbers"][0]["id"]
    rpc.call("POST", f"/v1/numbers/{did_id}/assign", {"tenant_id": tenant,
                                                       "extension_id": created["id"]})
    rpc.call("PUT", f"/v1/numbers/{did_id}/e911", {"address": {
        "street": "1234 Main St", "unit": "Floor 2", "city": "Little Rock", "state": "AR", "zip": "72211"}})


def _uas_checking(header_or_msg: str, regexp: str) -> str:
    """A UAS answering one INVITE; it fails unless ``regexp`` matches the INVITE (``msg``: the
    whole message, request line included; else the named header)."""
    where = 'search_in="msg"' if header_or_msg == "msg" else f'search_in="hdr" header="{header_or_msg}"'
    check = (f'  <recv request="INVITE" timeout="60000">\n    <action>\n      <ereg regexp="{regexp}" {where}'
             ' check_it="true" assign_to="1"/>\n    </action>\n  </recv>\n  <Reference variables="1"/>\n')
    scenario = uas_scenario(invite_timeout_ms=60000, bye_timeout_ms=60000)
    plain = '  <recv request="INVITE" timeout="60000"/>\n'
    assert plain in scenario
    return scenario.replace(plain, check)


def test_compose_tenant_extension_registers(stack: Stack) -> None:
    result = stack.phone(register_scenario(), "acme_101", "acme_101")
    assert result.returncode == 0, f"REGISTER refused:\n{result.stderr.decode()[-1500:]}\n{stack.logs()}"


def test_compose_outbound_call_reaches_the_carrier_and_is_rated(stack: Stack) -> None:
    carrier = stack.phone(_uas_checking("msg", rf"INVITE sip:[+]?{TOLL_FREE}@"), "carrier", background=True,
                          port=stack.carrier_port)
    try:
        time.sleep(0.3)
        call = stack.phone(call_scenario(auth=True, hold_ms=1000), TOLL_FREE, "acme_101")
        assert call.returncode == 0, f"outbound call failed:\n{call.stderr.decode()[-1500:]}\n{stack.logs()}"
        assert finished(carrier, 60) == 0, f"the carrier UAS did not get +{TOLL_FREE}: {sipp_failure(carrier)}"
    finally:
        if carrier.poll() is None:
            carrier.kill()
            carrier.wait()
    deadline, items = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        items = [r for r in stack.rpc.call("GET", f"/v1/calls?tenant_id={stack.tenant}&direction=outbound")["items"]
                 if r["disposition"] == "ANSWERED"]
        if items:
            break
        time.sleep(0.5)
    assert len(items) == 1, f"no rated outbound record: {items}\n{stack.logs()}"
    record = items[0]
    # The number the carrier received is the record's callee; 60/6 retail, 6/6 wholesale.
    assert record["callee"] == f"+{TOLL_FREE}" and record["extension"] == "101"
    assert record["call_class"] == "toll_free" and 1 <= record["answered_s"] <= 6
    assert record["billable_s"] == 60 and record["retail_micros"] == 30_000  # 60 s at $0.03/min
    assert record["wholesale_billable_s"] == 6 and record["wholesale_micros"] == 1_700  # Business $0.017/min


def _911_reaches(stack: Stack, uas: str, port: int, caller: str, what: str) -> None:
    """``caller`` dials 911; the UAS on ``port`` (running ``uas``) must get and end the call."""
    trunk = stack.phone(uas, "uas", background=True, port=port)
    try:
        time.sleep(0.3)
        call = stack.phone(call_scenario(auth=True), "911", caller)
        assert call.returncode == 0, f"911 failed:\n{call.stderr.decode()[-1500:]}\n{stack.logs()}"
        assert finished(trunk, 60) == 0, f"{what}: {sipp_failure(trunk)}"
    finally:
        if trunk.poll() is None:
            trunk.kill()
            trunk.wait()


def test_compose_911_reaches_the_emergency_uas_with_the_registered_did(stack: Stack) -> None:
    _911_reaches(stack, _uas_checking("From:", r"\+15015550177"), stack.emergency_port, "acme_101",
                 f"the emergency UAS did not get the call from {DID}")


def test_compose_911_without_a_registered_address_reaches_the_relay_uas(stack: Stack) -> None:
    _911_reaches(stack, uas_scenario(invite_timeout_ms=60000, bye_timeout_ms=60000), stack.relay_port,
                 "beta_101", "the relay UAS did not get the call")


def _options(port: int) -> str:
    """One OPTIONS to the edge itself over UDP; the reply's text ("" when none came)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        branch, tag = secrets.token_hex(8), secrets.token_hex(4)
        request = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{branch};rport\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:probe@127.0.0.1:{local}>;tag={tag}\r\n"
                   f"To: <sip:127.0.0.1:{port}>\r\n"
                   f"Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock.settimeout(1.0)
        sock.sendto(request.encode(), ("127.0.0.1", port))
        try:
            return sock.recv(65535).decode(errors="replace")
        except OSError:
            return ""


def _state(stack: Stack, service: str) -> dict[str, Any]:
    done = subprocess.run(["podman", "inspect", "--format", "{{json .State}}", f"{stack.project}_{service}_1"],
                          env=stack.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"no {service} container: {done.stderr}\n{stack.logs()}"
    state: dict[str, Any] = json.loads(done.stdout)
    return state


def test_compose_kamailio_edge_runs_the_rendered_config_and_answers_options(stack: Stack) -> None:
    deadline, reply = time.monotonic() + 60, ""
    while time.monotonic() < deadline and not reply:
        reply = _options(stack.edge_sip_port)
    assert reply.startswith("SIP/2.0 200"), f"no 200 to OPTIONS from the edge: {reply!r}\n{stack.logs()}"
    assert "kamailio" in reply.lower(), f"the reply is not Kamailio's: {reply!r}"
    # The configuration is the project's: its JSON-RPC listens where edge-config was told.
    body = json.dumps({"jsonrpc": "2.0", "method": "core.version", "id": 1}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{stack.edge_rpc_port}/RPC", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert "kamailio" in json.loads(response.read())["result"].lower()
    assert _state(stack, ONE_SHOT)["ExitCode"] == 0
    # It stays up: still running a while later, and still answering.
    time.sleep(2.0)
    assert _state(stack, "kamailio")["Running"] is True, stack.logs()
    assert _options(stack.edge_sip_port).startswith("SIP/2.0 200")
