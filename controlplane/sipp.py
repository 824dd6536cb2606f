"""SIPp scenarios for a phone of a tenant: register with digest auth, call with it.

Used by ``controlplane demo`` and by the end-to-end tests; SIPp is Debian's
``sip-tester``.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
_REQUEST = """  <send{retrans}><![CDATA[
{method} sip:{target}[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[call_number]
To: <sip:{to}@[remote_ip]>{peer_tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:[field0]@[local_ip]:[local_port]>
{auth}Max-Forwards: 70
{extra}"""
_SDP = """Content-Type: application/sdp
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
_EMPTY = "Content-Length: 0\n\n]]></send>\n"


def _request(method: str, cseq: int, *, target: str = "", to: str = "[field0]", auth: bool = False,
             peer_tag: bool = False, extra: str = _EMPTY) -> str:
    # An ACK is never answered: retransmitting it would stall the scenario.
    retrans = "" if method == "ACK" else ' retrans="500"'
    return _REQUEST.format(retrans=retrans, method=method, cseq=cseq, target=target, to=to,
                           peer_tag="[peer_tag_param]" if peer_tag else "",
                           auth="[authentication]\n" if auth else "", extra=extra)


def register_scenario() -> str:
    """REGISTER as [field0], answer the 401 challenge, expect 200."""
    return (_HEAD.format(name="register")
            + _request("REGISTER", 1, extra="Expires: 300\n" + _EMPTY)
            + '  <recv response="401" auth="true"/>\n'
            + _request("REGISTER", 2, auth=True, extra="Expires: 300\n" + _EMPTY)
            + '  <recv response="200" timeout="5000"/>\n</scenario>\n')


def call_scenario(hold_ms: int) -> str:
    """INVITE [service] as [field0] with digest auth; talk ``hold_ms``; hang up."""
    def invite(cseq: int, auth: bool = False) -> str:
        return _request("INVITE", cseq, target="[service]@", to="[service]", auth=auth, extra=_SDP)

    return (_HEAD.format(name="call")
            + invite(1)
            + '  <recv response="100" optional="true"/>\n  <recv response="401" auth="true"/>\n'
            + _request("ACK", 1, target="[service]@", to="[service]", peer_tag=True)
            + invite(2, auth=True)
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="183" optional="true"/>\n  <recv response="200" timeout="10000"/>\n'
            + _request("ACK", 2, target="[service]@", to="[service]", peer_tag=True)
            + f'  <pause milliseconds="{hold_ms}"/>\n'
            + _request("BYE", 3, target="[service]@", to="[service]", peer_tag=True)
            + '  <recv response="200"/>\n</scenario>\n')


@dataclass(frozen=True)
class Phone:
    """A SIP account of an extension, as SIPp plays it."""

    username: str
    password: str
    sip_port: int  # Asterisk's
    host: str = "127.0.0.1"

    async def run(self, scenario: str, service: str, timeout_s: int = 20) -> tuple[int, str]:
        """Run one call of ``scenario``; (exit code, SIPp's error output)."""
        with tempfile.TemporaryDirectory(prefix="sipp-") as tmp:
            work = Path(tmp)
            (work / "scenario.xml").write_text(scenario)
            (work / "users.csv").write_text(f"SEQUENTIAL\n{self.username};\n")
            proc = await asyncio.create_subprocess_exec(
                "sipp", "-sf", "scenario.xml", "-inf", "users.csv", "-s", service,
                "-au", self.username, "-ap", self.password, "-m", "1", "-i", self.host,
                "-p", str(_free_udp_port()), "-mp", str(_free_udp_port()),
                "-timeout", f"{timeout_s}s", "-nostdin", "-trace_err", f"{self.host}:{self.sip_port}",
                cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
            detail = err.decode(errors="replace")
            for trace in work.glob("*_errors.log"):
                detail += trace.read_text(errors="replace")
            return proc.returncode or 0, detail


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
