"""Harness for the tenants e2e tests and the provisioning bench: a private Asterisk
instance in the cached rootfs whose PJSIP objects come from our PostgreSQL
(sorcery realtime), SIPp scenarios, and a tiny SIP UAC for odd dial strings.

Shared by test_isolation.py, test_lifecycle.py and bench/bench_provisioning.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from provisioning.realtime_conf import PgTarget, realtime_files

ROOTFS = Path(os.environ.get("CONTROLPLANE_ASTERISK_ROOTFS")
              or Path.home() / ".cache/controlplane/asterisk-rootfs")
MODULES = [
    "res_timing_timerfd", "codec_ulaw", "codec_alaw", "codec_gsm", "format_gsm", "format_wav", "format_pcm",
    "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb", "res_sorcery_realtime",
    "res_sorcery_memory_cache", "res_config_pgsql", "res_pjproject", "res_rtp_asterisk", "res_pjsip",
    "res_pjsip_session", "res_pjsip_pubsub", "res_pjsip_sdp_rtp", "res_pjsip_authenticator_digest",
    "res_pjsip_endpoint_identifier_user", "res_pjsip_registrar", "res_pjsip_caller_id", "res_pjsip_nat",
    "chan_pjsip", "pbx_config", "app_dial", "app_playback", "app_echo", "func_channel", "func_strings",
    "func_callerid", "bridge_simple", "bridge_native_rtp", "res_pjsip_logger",
]
USER = "cptest"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> str | None:
    """Why the e2e cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (chroot)"
    if not (ROOTFS / "usr/sbin/asterisk").exists():
        return f"no Asterisk root filesystem at {ROOTFS}"
    if subprocess.run(["which", "sipp"], capture_output=True).returncode != 0:
        return "sipp is not installed"
    return None


class TenantAsterisk:
    """Asterisk reading tenant PJSIP objects from ``dsn``; dialplan from extensions_tenants.conf."""

    def __init__(self, dsn: str, extra_pjsip: str = "", extra_files: dict[str, str] | None = None) -> None:
        self.name = f"e2e-tenants-{secrets.token_hex(4)}"
        self.dir = ROOTFS / "srv" / self.name
        self.conf = f"/srv/{self.name}/etc/asterisk.conf"
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.ami_port = free_port()
        self.secret = secrets.token_hex(8)
        self.dsn, self.extra_pjsip, self.extra_files = dsn, extra_pjsip, extra_files or {}

    @property
    def etc(self) -> Path:
        return self.dir / "etc"

    @property
    def dialplan_path(self) -> Path:
        return self.etc / "extensions_tenants.conf"

    def write_config(self) -> None:
        inner = f"/srv/{self.name}"
        files = {
            "asterisk.conf": f"[directories]\nastetcdir => {inner}/etc\nastrundir => {inner}/run\n"
                             f"astlogdir => {inner}/log\nastspooldir => {inner}/spool\n"
                             f"astdbdir => {inner}/db\nastvarlibdir => /var/lib/asterisk\n"
                             "astdatadir => /usr/share/asterisk\n[options]\nhideconnect = yes\n",
            "modules.conf": "[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in MODULES),
            "logger.conf": "[logfiles]\nmessages.log => notice,warning,error\nfull.log => notice,warning,error,verbose\n",
            "manager.conf": f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nport = {self.ami_port}\n"
                            f"[{USER}]\nsecret = {self.secret}\nread = all\nwrite = all\n",
            "pjsip.conf": "[global]\ntype = global\nendpoint_identifier_order = username,ip\n"
                          "max_initial_qualify_time = 0\n"
                          f"[udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{self.sip_port}\n"
                          + self.extra_pjsip,
            "extensions.conf": "[general]\nstatic = yes\nwriteprotect = yes\nautofallthrough = yes\n"
                               "#include extensions_tenants.conf\n",
            "extensions_tenants.conf": "",
            "rtp.conf": "[general]\nrtpstart = 21000\nrtpend = 21999\n",
            **realtime_files(PgTarget.from_dsn(self.dsn)),
            **self.extra_files,
        }
        for sub in ("etc", "run", "log", "spool", "db"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (self.etc / name).write_text(text)

    def cli(self, command: str, timeout: float = 60) -> str:
        result = subprocess.run(["chroot", str(ROOTFS), "/usr/sbin/asterisk", "-C", self.conf, "-rx", command],
                                check=False, capture_output=True, text=True, timeout=timeout)
        return result.stdout

    def start(self, timeout: float = 60) -> float:
        """Start and wait for FullyBooted; returns the seconds it took."""
        started = time.monotonic()
        subprocess.run(["chroot", str(ROOTFS), "/usr/sbin/asterisk", "-C", self.conf],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=30)
        while time.monotonic() - started < timeout:
            result = subprocess.run(["chroot", str(ROOTFS), "/usr/sbin/asterisk", "-C", self.conf, "-rx",
                                     "core waitfullybooted"], capture_output=True, timeout=timeout)
            if result.returncode == 0:
                return time.monotonic() - started
            time.sleep(0.2)
        raise RuntimeError(f"asterisk did not boot; see {self.dir}/log/messages.log")

    def pid(self) -> int | None:
        try:
            pid = int((self.dir / "run/asterisk.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return pid if state != "Z" and self.conf.encode() in cmdline else None

    def stop(self) -> None:
        if self.pid() is not None:
            self.cli("core stop now", timeout=20)
            deadline = time.monotonic() + 15
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        if (pid := self.pid()) is not None:
            os.kill(pid, signal.SIGKILL)


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

_ANSWER = """  <recv request="INVITE" timeout="{timeout}"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
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
  <recv request="ACK"/>
  <recv request="BYE" timeout="30000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""


def register_scenario() -> str:
    """REGISTER with digest auth (-s user, -au/-ap credentials); 200 expected."""
    body = _HEAD.format(name="register")
    body += _REGISTER.format(cseq=1, auth="")
    body += '  <recv response="401" auth="true"/>\n'
    body += _REGISTER.format(cseq=2, auth="[authentication]\n")
    body += '  <recv response="200" timeout="5000"/>\n'
    return body + "</scenario>\n"


def answer_scenario(timeout_ms: int) -> str:
    """UAS: answer one INVITE (run on the port a register_scenario just registered)."""
    return _HEAD.format(name="answer") + _ANSWER.format(timeout=timeout_ms) + "</scenario>\n"


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
    if expect_bye:
        body += """  <recv request="BYE" timeout="15000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""
    else:
        body += f'  <pause milliseconds="{hold_ms}"/>\n'
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
  <recv response="200"/>
""".format(caller=caller, cseq=cseq + 1)
    return body + "</scenario>\n"


def sipp(asterisk: TenantAsterisk, scenario: str, service: str, *, user: str | None = None,
         password: str | None = None, timeout: str = "20s", background: bool = False,
         port: int | None = None) -> subprocess.Popen[bytes] | subprocess.CompletedProcess[bytes]:
    """Run one SIPp call of ``scenario``; exit code 0 means the scenario completed."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-"))
    path = workdir / "scenario.xml"
    path.write_text(scenario)
    args = ["sipp", "-sf", str(path), "-s", service, "-m", "1", "-i", "127.0.0.1",
            "-p", str(port or free_port(socket.SOCK_DGRAM)), "-mp", str(free_port(socket.SOCK_DGRAM)),
            "-timeout", timeout, "-nostdin", "-trace_err", f"127.0.0.1:{asterisk.sip_port}"]
    if user is not None:
        csv = workdir / "users.csv"
        csv.write_text(f"SEQUENTIAL\n{user};\n")
        args += ["-inf", str(csv), "-au", user, "-ap", password or ""]
    if background:
        return subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(args, cwd=workdir, capture_output=True, timeout=120)


# ---------------------------------------------------------------- a tiny UAC for odd dial strings

def sip_invite_status(sip_port: int, user: str, password: str, request_user: str, realm: str) -> int:
    """INVITE sip:<request_user>@asterisk as ``user`` with digest auth; the final status code.

    SIPp cannot send arbitrary bytes in a Request-URI; this can (percent-encoded
    per RFC 3261, as a phone would). Any 2xx is answered with ACK + BYE.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
    uri = f"sip:{request_user}@127.0.0.1:{sip_port}"
    sdp = f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port + 2} RTP/AVP 0\r\n"

    def request(method: str, cseq: int, extra: str = "", body: str = "", to_tag: str = "") -> None:
        branch = "z9hG4bK" + secrets.token_hex(6)
        msg = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
               f"From: <sip:{user}@127.0.0.1>;tag={tag}\r\nTo: <{uri}>{to_tag}\r\nCall-ID: {call_id}\r\n"
               f"CSeq: {cseq} {method}\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{extra}"
               + ("Content-Type: application/sdp\r\n" if body else "") + f"Content-Length: {len(body.encode())}\r\n\r\n" + body)
        sock.sendto(msg.encode("utf-8"), ("127.0.0.1", sip_port))

    def final() -> str:
        while True:
            data = sock.recv(65535).decode("utf-8", "replace")
            code = int(data.split(" ", 2)[1]) if data.startswith("SIP/2.0") else 0
            if code >= 200:
                return data

    try:
        request("INVITE", 1, body=sdp)
        reply = final()
        request("ACK", 1)
        if reply.split(" ", 2)[1] in ("401", "407"):
            nonce = re.search(r'nonce="([^"]+)"', reply).group(1)  # type: ignore[union-attr]
            ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
            response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
            auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}",'
                    f' response="{response}", algorithm=MD5\r\n')
            request("INVITE", 2, auth, sdp)
            reply = final()
            code = int(reply.split(" ", 2)[1])
            to_tag = ";tag=" + (re.search(r"^To:.*;tag=([^;\r\n]+)", reply, re.M | re.I) or ["", ""])[1]
            request("ACK", 2, to_tag=to_tag)
            if 200 <= code < 300:
                request("BYE", 3, to_tag=to_tag)
            return code
        return int(reply.split(" ", 2)[1])
    finally:
        sock.close()
