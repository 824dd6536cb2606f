"""Harness for the tenants e2e tests and the provisioning bench: an Asterisk from
the project's runner (base config from ``asterisk/etc``, the module list the
product ships) whose PJSIP objects come from our PostgreSQL (sorcery realtime,
the same extra files the daemon hands the runner), SIPp scenarios, and a tiny SIP
UAC (odd dial strings, and REGISTERs timed without a process start-up).

Test-only objects go through the runner's seams: ``pjsip_extra.conf`` (e.g. SIPp
as a carrier trunk) and ``extensions_extra.conf``, both ``#tryinclude``-d by the
base config. Shared by test_isolation.py, test_lifecycle.py and
bench/bench_provisioning.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec

from controlplane.asterisk.credentials import resolve_credentials
from controlplane.asterisk.runner import LocalRunner, default_rootfs, runner_for
from controlplane.tenants.plugin import DIALPLAN_FILE, asterisk_extra_files
from provisioning.names import internal_context
from harness import free_media_port, free_port, make_config, until_bound

ROOTFS = default_rootfs()
# The carrier as the product expects a trunk: identified by source IP only, never
# by the From user (a phone could put anything there), no auth.
CARRIER_TRUNK = ("[carrier]\ntype = endpoint\ncontext = from-carrier\ndisallow = all\nallow = ulaw\n"
                 "send_connected_line = no\nidentify_by = ip\n"
                 "[carrier]\ntype = identify\nendpoint = carrier\nmatch = 127.0.0.1\n")


def available() -> str | None:
    """Why the e2e cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (chroot)"
    if not (ROOTFS / "usr/sbin/asterisk").exists():
        return f"no Asterisk root filesystem at {ROOTFS}"
    if shutil.which("sipp") is None:
        return "sipp is not installed"
    return None


class TenantAsterisk:
    """The product's Asterisk (runner + base config) reading tenant PJSIP objects from ``dsn``.

    ``extra_pjsip`` becomes ``pjsip_extra.conf``, ``extra_dialplan``
    ``extensions_extra.conf``; ``extra_files`` may add or override any extra file
    (``sorcery.conf`` included). The instance directory lives under the rootfs's
    ``/srv/controlplane`` and is removed by ``stop()``.
    """

    def __init__(self, dsn: str, extra_pjsip: str = "", extra_files: dict[str, str] | None = None,
                 extra_dialplan: str = "", boot_timeout: float = 60.0) -> None:
        self.name = f"e2e-tenants-{secrets.token_hex(4)}"
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        config = make_config(self.data_dir, instance=self.name, run="local")
        self.config = msgspec.structs.replace(
            config, asterisk=msgspec.structs.replace(config.asterisk, boot_timeout=boot_timeout))
        files = dict(asterisk_extra_files(dsn))
        if extra_pjsip:
            files["pjsip_extra.conf"] = extra_pjsip
        if extra_dialplan:
            files["extensions_extra.conf"] = extra_dialplan
        files.update(extra_files or {})
        self.runner = runner_for(self.config, extra_files=files)
        assert isinstance(self.runner, LocalRunner), "the tenants e2e needs the local runner"
        self.dsn = dsn
        creds = resolve_credentials(self.config)
        self.ami_user, self.secret = creds.ami_user, creds.ami_password
        self.sip_port = self.config.asterisk.sip_port
        self.ami_port = self.config.asterisk.ami_port
        self.http_port = self.config.asterisk.http_port

    @property
    def dir(self) -> Path:
        return self.runner.instance_dir

    @property
    def etc(self) -> Path:
        return self.runner.instance_dir / "etc"

    @property
    def dialplan_path(self) -> Path:
        return self.etc / DIALPLAN_FILE

    def write_config(self) -> None:
        """Kept for callers of the old harness: the runner renders the config in start()."""

    def cli(self, command: str, timeout: float = 60) -> str:
        return self.runner.cli(command, timeout=timeout)

    def start(self, timeout: float | None = None) -> float:
        """Start and wait for FullyBooted (and ARI); returns the seconds it took."""
        if timeout is not None and timeout != self.config.asterisk.boot_timeout:
            self.config = msgspec.structs.replace(
                self.config, asterisk=msgspec.structs.replace(self.config.asterisk, boot_timeout=timeout))
            self.runner.cfg = self.config
        started = time.monotonic()
        self.runner.up()
        return time.monotonic() - started

    def pid(self) -> int | None:
        return self.runner.status().pid

    def kill(self) -> None:
        self.runner.kill()

    def stop(self, remove: bool = True) -> None:
        """Stop Asterisk; unless ``remove`` is false, delete the instance and data directories."""
        self.runner.down()
        if remove:
            shutil.rmtree(self.runner.instance_dir, ignore_errors=True)
            shutil.rmtree(self.data_dir, ignore_errors=True)


# ---------------------------------------------------------------- SIPp

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
"""

_REGISTER = """  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[remote_ip]>;tag=[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
{auth}Expires: 300
Max-Forwards: 70
Content-Length: 0

]]></send>
"""



def _reply(status: str, extra: str = "", body: str = "", retrans: bool = False) -> str:
    """A response to the last request; ``body`` is SDP when given."""
    length = "[len]" if body else "0"
    attrs = ' retrans="500"' if retrans else ""
    return (f"  <send{attrs}><![CDATA[\nSIP/2.0 {status}\n"
            "[last_Via:]\n[last_From:]\n[last_To:]{tag}\n[last_Call-ID:]\n[last_CSeq:]\n"
            f"{extra}Content-Length: {length}\n\n{body}]]></send>\n")


_SDP = ("v=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\n"
        "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n")
_CONTACT = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"


def uas_scenario(*, answer: bool = True, invite_timeout_ms: int | None = None,
                 bye_timeout_ms: int | None = None, retransmit_ok: bool = False) -> str:
    """A SIPp UAS (a phone, or the carrier): ring, answer, wait for the BYE; or refuse 486.

    Run with ``-m N`` it serves N calls; without a timeout it waits as long as SIPp does.
    """
    def timeout(ms: int | None) -> str:
        return f' timeout="{ms}"' if ms is not None else ""

    dialog = ";tag=[call_number]"
    body = _HEAD.format(name="uas") + f'  <recv request="INVITE"{timeout(invite_timeout_ms)}/>\n'
    if not answer:
        body += _reply("486 Busy Here", _CONTACT).format(tag=dialog) + '  <recv request="ACK"/>\n'
        return body + "</scenario>\n"
    body += _reply("180 Ringing", _CONTACT).format(tag=dialog)
    answered = _reply("200 OK", _CONTACT + "Content-Type: application/sdp\n", _SDP, retrans=retransmit_ok)
    body += answered.format(tag=dialog)
    body += f'  <recv request="ACK"/>\n  <recv request="BYE"{timeout(bye_timeout_ms)}/>\n'
    return body + _reply("200 OK").format(tag="") + "</scenario>\n"


def register_scenario() -> str:
    """REGISTER with digest auth (-s user, -au/-ap credentials); 200 expected."""
    body = _HEAD.format(name="register")
    body += _REGISTER.format(cseq=1, auth="")
    body += '  <recv response="401" auth="true"/>\n'
    body += _REGISTER.format(cseq=2, auth="[authentication]\n")
    body += '  <recv response="200" timeout="5000"/>\n'
    return body + "</scenario>\n"


def answer_scenario(timeout_ms: int) -> str:
    """A phone answering one INVITE (run on the port a register_scenario just registered)."""
    return uas_scenario(invite_timeout_ms=timeout_ms, bye_timeout_ms=30000, retransmit_ok=True)


def call_scenario(auth: bool, hold_ms: int = 500, expect_bye: bool = False) -> str:
    """INVITE [service] (with digest auth when ``auth``); 200 expected; we hang up (or Asterisk does)."""
    invite = """  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:{caller}@[local_ip]:[local_port]>
{auth}Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

]]></send>
"""
    ack = """  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
    caller = "[field0]" if auth else "carrier"
    body = _HEAD.format(name="call")
    cseq = 1
    if auth:
        body += invite.format(caller=caller, cseq=1, auth="")
        body += '  <recv response="100" optional="true"/>\n  <recv response="401" auth="true"/>\n'
        body += ack.format(caller=caller, cseq=1)
        cseq = 2
        body += invite.format(caller=caller, cseq=2, auth="[authentication]\n")
    else:
        body += invite.format(caller=caller, cseq=1, auth="")
    body += ('  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
             '  <recv response="183" optional="true"/>\n  <recv response="200" rrs="true" timeout="10000"/>\n')
    body += ack.format(caller=caller, cseq=cseq)
    # A provisional reply may arrive after the 200 (a proxy's UDP workers can reorder what they
    # relay). A phone ignores it; SIPp takes it only as an optional recv between the one it waits at
    # and the next mandatory one, so every wait below starts with these. In a hold they jump back to
    # its start ("1"): one that came before SIPp had armed the hold's timer would leave the call
    # paused for good, with nothing left to wake it.
    def late(attrs: str = "", timer: str = "") -> str:
        return "".join(f'  <recv response="{code}" optional="true"{attrs}{timer if code == 100 else ""}/>\n'
                       for code in (100, 180, 183))
    # Asterisk may re-INVITE the caller once answered (a connected-line update that lost
    # the race with the 200 OK): a phone answers it, and so do we, then keep waiting.
    reinvite = ('  <label id="2"/>\n'
                + _reply("200 OK", _CONTACT + "Content-Type: application/sdp\n", _SDP).format(tag="")
                + '  <recv request="ACK" next="1"/>\n')
    if expect_bye:
        body += ('  <label id="1"/>\n  <recv request="INVITE" optional="true" next="2"/>\n' + late(' next="1"')
                 + '  <recv request="BYE" timeout="15000"/>\n'
                 + _reply("200 OK").format(tag="").replace("<send>", '<send next="9">', 1))
    else:
        # The hold is a wait for that re-INVITE (SIPp reads timeout="0" as "forever": 1 ms at least),
        # timed by the recv it starts at (a late reply restarts it).
        body += ('  <label id="1"/>\n' + late(' next="1"', f' timeout="{max(hold_ms, 1)}" ontimeout="3"')
                 + '  <recv request="INVITE"/>\n  <nop next="2"/>\n  <label id="3"/>\n')
        body += """  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
{late}  <recv response="200" next="9"/>
""".format(caller=caller, cseq=cseq + 1, late=late())
    body += reinvite + '  <label id="9"/>\n'
    return body + "</scenario>\n"


class SipTarget(Protocol):
    """What SIPp calls: an Asterisk's SIP port (a TenantAsterisk, a daemon's world)."""

    @property
    def sip_port(self) -> int: ...


def sipp_as(target: SipTarget, procs: list[subprocess.Popen[bytes]], passwords: Mapping[str, str], scenario: str,
            service: str, *, user: str | None = None, port: int | None = None, background: bool = True,
            timeout: str = "60s") -> Any:
    """The e2e worlds' SIPp runner: ``sipp`` as ``user`` with its password from ``passwords``; a
    background run joins ``procs`` (the world stops them with its daemon)."""
    proc = sipp(target, scenario, service, user=user, password=passwords.get(user or ""), background=background,
                port=port, timeout=timeout)
    if isinstance(proc, subprocess.Popen):
        procs.append(proc)
    return proc


def sipp(asterisk: SipTarget, scenario: str, service: str, *, user: str | None = None,
         password: str | None = None, timeout: str = "20s", background: bool = False,
         port: int | None = None) -> subprocess.Popen[bytes] | subprocess.CompletedProcess[bytes]:
    """Run one SIPp call of ``scenario``; exit code 0 means the scenario completed."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-"))
    path = workdir / "scenario.xml"
    path.write_text(scenario)
    port = port or free_port(socket.SOCK_DGRAM)
    args = ["sipp", "-sf", str(path), "-s", service, "-m", "1", "-i", "127.0.0.1",
            "-p", str(port), "-mp", str(free_media_port()),
            "-timeout", timeout, "-nostdin", "-trace_err", f"127.0.0.1:{asterisk.sip_port}"]
    if user is not None:
        csv = workdir / "users.csv"
        csv.write_text(f"SEQUENTIAL\n{user};\n")
        args += ["-inf", str(csv), "-au", user, "-ap", password or ""]
    if background:
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc.workdir = workdir  # type: ignore[attr-defined]  # for sipp_failure
        return until_bound(proc, port)
    return subprocess.run(args, cwd=workdir, capture_output=True, timeout=120)


LOAD_IP = "127.0.0.2"  # the benches' load endpoint is identified by this source address


def load_endpoint(tenant_id: str, prefix: str) -> str:
    """An endpoint identified by IP (``LOAD_IP``) into the tenant's context, tagged like a
    provisioned phone: SIPp loads it without digest auth."""
    return (f"[bench]\ntype = endpoint\ncontext = {internal_context(prefix)}\ndisallow = all\nallow = ulaw\n"
            f"accountcode = {tenant_id}\nset_var = __TENANT_ID={tenant_id}\nidentify_by = ip\n"
            f"[bench]\ntype = identify\nendpoint = bench\nmatch = {LOAD_IP}\n")


async def sipp_load(args: list[str], cwd: Path, stat: Path, limit_s: float) -> tuple[int, int, float]:
    """One SIPp load run (``args`` write ``-trace_stat`` to ``stat``), killed after ``limit_s``:
    (successful calls, failed calls, wall seconds)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*args, cwd=cwd, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(proc.wait(), limit_s)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    wall = time.monotonic() - started
    lines = stat.read_text().splitlines()
    head, last = lines[0].split(";"), lines[-1].split(";")
    return int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")]), wall


def finished(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """A background SIPp run's exit code, or None (and the run killed) after ``timeout`` s."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def sipp_failure(proc: subprocess.Popen[bytes]) -> str:
    """What a background SIPp run saw go wrong (its error trace), for an assertion message."""
    workdir = getattr(proc, "workdir", None)
    traces = sorted(Path(workdir).glob("*errors.log")) if workdir else []
    return "\n".join(t.read_text(errors="replace")[-2000:] for t in traces) or "no SIPp error trace"


# ---------------------------------------------------------------- a tiny UAC (odd dial strings, timed REGISTERs)

class _Uac:
    """One dialog of a phone ``user`` over UDP to Asterisk on ``sip_port``, answering digest
    challenges: for what SIPp cannot send, or must not be timed with a process start-up."""

    def __init__(self, sip_port: int, user: str, password: str, realm: str) -> None:
        self.sip_port, self.user, self.password, self.realm = sip_port, user, password, realm
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.call_id, self.tag = secrets.token_hex(8), secrets.token_hex(4)

    def send(self, method: str, uri: str, cseq: int, extra: str = "", body: str = "", to: str = "") -> None:
        branch = "z9hG4bK" + secrets.token_hex(6)
        msg = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
               f"From: <sip:{self.user}@127.0.0.1>;tag={self.tag}\r\nTo: {to or f'<{uri}>'}\r\n"
               f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
               f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nMax-Forwards: 70\r\n{extra}"
               + ("Content-Type: application/sdp\r\n" if body else "")
               + f"Content-Length: {len(body.encode())}\r\n\r\n" + body)
        self.sock.sendto(msg.encode("utf-8"), ("127.0.0.1", self.sip_port))

    def final(self) -> tuple[int, str]:
        """The next final reply: its code and text."""
        while True:
            data = self.sock.recv(65535).decode("utf-8", "replace")
            code = int(data.split(" ", 2)[1]) if data.startswith("SIP/2.0") else 0
            if code >= 200:
                return code, data

    def authorization(self, method: str, uri: str, challenge: str) -> str:
        nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)  # type: ignore[union-attr]
        ha1 = hashlib.md5(f"{self.user}:{self.realm}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return (f'Authorization: Digest username="{self.user}", realm="{self.realm}", nonce="{nonce}", uri="{uri}",'
                f' response="{response}", algorithm=MD5\r\n')


def sip_register_status(sip_port: int, user: str, password: str, realm: str) -> int:
    """REGISTER ``user`` (answering the challenge); the final status code. No process starts, so
    timing it times Asterisk (bench_provisioning's "live" figure)."""
    uac = _Uac(sip_port, user, password, realm)
    uri, aor = f"sip:127.0.0.1:{sip_port}", f"<sip:{user}@127.0.0.1>"
    try:
        uac.send("REGISTER", uri, 1, "Expires: 300\r\n", to=aor)
        code, reply = uac.final()
        if code in (401, 407):
            uac.send("REGISTER", uri, 2, "Expires: 300\r\n" + uac.authorization("REGISTER", uri, reply), to=aor)
            code, reply = uac.final()
        return code
    finally:
        uac.sock.close()


def sip_invite_status(sip_port: int, user: str, password: str, request_user: str, realm: str) -> int:
    """INVITE sip:<request_user>@asterisk as ``user`` with digest auth; the final status code.

    SIPp cannot send arbitrary bytes in a Request-URI; this can (percent-encoded
    per RFC 3261, as a phone would). Any 2xx is answered with ACK + BYE.
    """
    uac = _Uac(sip_port, user, password, realm)
    uri = f"sip:{request_user}@127.0.0.1:{sip_port}"
    sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {uac.port + 2} RTP/AVP 0\r\n")
    try:
        uac.send("INVITE", uri, 1, body=sdp)
        code, reply = uac.final()
        uac.send("ACK", uri, 1)
        if code in (401, 407):
            uac.send("INVITE", uri, 2, uac.authorization("INVITE", uri, reply), sdp)
            code, reply = uac.final()
            to = f"<{uri}>;tag=" + (re.search(r"^To:.*;tag=([^;\r\n]+)", reply, re.M | re.I) or ["", ""])[1]
            uac.send("ACK", uri, 2, to=to)
            if 200 <= code < 300:
                uac.send("BYE", uri, 3, to=to)
        return code
    finally:
        uac.sock.close()
