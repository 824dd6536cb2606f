"""SIPp phone scenarios for ring groups and queues (tests/e2e/test_ring_groups_queues_e2e.py):
a phone that answers after ringing a while, and a phone that must be cancelled in time."""

from __future__ import annotations

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
_CONTACT = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"
_SDP = ("v=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\n"
        "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n")


def _reply(status: str, *, tag: str = "", extra: str = "", body: str = "", cseq: str = "[last_CSeq:]",
           retrans: bool = False) -> str:
    length = "[len]" if body else "0"
    attrs = ' retrans="500"' if retrans else ""
    return (f"  <send{attrs}><![CDATA[\nSIP/2.0 {status}\n"
            f"[last_Via:]\n[last_From:]\n[last_To:]{tag}\n[last_Call-ID:]\n{cseq}\n"
            f"{extra}Content-Length: {length}\n\n{body}]]></send>\n")


def late_answer_scenario(*, ring_ms: int, invite_timeout_ms: int = 30000, bye_timeout_ms: int = 30000) -> str:
    """Ring ``ring_ms``, answer, wait for the BYE (the caller hangs up)."""
    tag = ";tag=[call_number]"
    return (_HEAD.format(name="late-answer")
            + f'  <recv request="INVITE" timeout="{invite_timeout_ms}"/>\n'
            + _reply("180 Ringing", tag=tag, extra=_CONTACT)
            + f'  <pause milliseconds="{ring_ms}"/>\n'
            + _reply("200 OK", tag=tag, extra=_CONTACT + "Content-Type: application/sdp\n", body=_SDP,
                     retrans=True)
            + '  <recv request="ACK"/>\n'
            + f'  <recv request="BYE" timeout="{bye_timeout_ms}"/>\n'
            + _reply("200 OK") + "</scenario>\n")


def cancelled_scenario(*, cancel_within_ms: int, invite_timeout_ms: int = 30000) -> str:
    """Ring and never answer: the CANCEL must arrive within ``cancel_within_ms`` of the 180
    (else the scenario fails); 200 to the CANCEL, 487 to the INVITE, then its ACK."""
    tag = ";tag=[call_number]"
    return (_HEAD.format(name="cancelled")
            + f'  <recv request="INVITE" timeout="{invite_timeout_ms}"/>\n'
            + _reply("180 Ringing", tag=tag, extra=_CONTACT)
            + f'  <recv request="CANCEL" timeout="{cancel_within_ms}"/>\n'
            + _reply("200 OK", tag=tag)
            + _reply("487 Request Terminated", tag=tag, cseq="CSeq: [last_cseq_number] INVITE")
            + '  <recv request="ACK"/>\n</scenario>\n')


def carrier_hold_scenario(hold_ms: int) -> str:
    """A carrier call that stays ``hold_ms`` once answered (no keys): flows_support's DTMF caller
    without its pause, which a connected-line re-INVITE right after the answer would abort."""
    from flows_support import carrier_dtmf_scenario

    scenario = carrier_dtmf_scenario("", wait_ms=0, hold_ms=hold_ms)
    pause = '  <pause milliseconds="0"/>\n'
    assert pause in scenario
    return scenario.replace(pause, "")
