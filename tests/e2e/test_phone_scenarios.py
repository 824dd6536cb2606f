"""The e2e phones' own SIPp scenarios, played against a SIPp answerer: what a real phone shrugs
off must not fail a call test.

A proxy relaying UDP replies from several workers (Kamailio) can deliver an INVITE's ``180`` after
its ``200``. A phone ignores it; SIPp aborts on any reply its scenario does not place, so the
calling scenario must place the late provisional replies where SIPp will accept them.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass

from edge_support import sipp_uas
from harness import free_port
from tenants_e2e import _CONTACT, _HEAD, _SDP, _reply, call_scenario, finished, sipp, sipp_failure


@dataclass(frozen=True)
class _Answerer:
    sip_port: int


def reordering_answerer() -> str:
    """Answers, then sends the ``180 Ringing`` the proxy delayed, once the ACK came: the caller
    holds the call by then."""
    dialog = ";tag=[call_number]"
    ringing = _reply("180 Ringing", _CONTACT).format(tag=dialog)
    body = _HEAD.format(name="reordering") + '  <recv request="INVITE"/>\n'
    body += _reply("200 OK", _CONTACT + "Content-Type: application/sdp\n", _SDP, retrans=True).format(tag=dialog)
    body += '  <recv request="ACK"/>\n'
    # The ACK is the last message received now: the late reply names the INVITE's CSeq itself.
    body += ringing.replace("[last_CSeq:]", "CSeq: 1 INVITE").replace("[last_Via:]", "Via: [$via]")
    body += '  <recv request="BYE" timeout="10000"/>\n' + _reply("200 OK").format(tag="")
    keep_via = ('<recv request="INVITE"><action><ereg regexp=".*" search_in="hdr" header="Via:" '
                'check_it="true" assign_to="via"/></action></recv>')
    return body.replace('<recv request="INVITE"/>', keep_via, 1) + "</scenario>\n"


def test_a_late_ringing_after_the_answer_does_not_fail_the_call() -> None:
    port = free_port(socket.SOCK_DGRAM)
    answerer = sipp_uas(port, reordering_answerer(), timeout="30s")
    caller = sipp(_Answerer(port), call_scenario(auth=False, hold_ms=1500), "201")
    assert isinstance(caller, subprocess.CompletedProcess)
    assert caller.returncode == 0, caller.stderr.decode(errors="replace")[-2000:]
    assert finished(answerer, 15) == 0, sipp_failure(answerer)
