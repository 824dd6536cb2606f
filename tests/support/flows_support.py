"""SIPp scenarios for call flows: a carrier call that keys DTMF as RFC 2833 (RFC 4733) events.

SIPp's ``<send>`` of INFO would be SIP INFO DTMF, not RFC 2833. Here the digits are RTP
telephone-event packets (payload type 101) replayed from the pcaps Debian's sip-tester ships
(``/usr/share/sip-tester/dtmf_2833_<d>.pcap``) with ``play_pcap_audio``; the SDP offers
``telephone-event/8000`` on 101 so Asterisk (dtmf_mode rfc4733) reads them as digits.
"""

from __future__ import annotations

from pathlib import Path

PCAP_DIR = Path("/usr/share/sip-tester")
_NAMES = {"*": "star", "#": "pound"}


def dtmf_pcap(digit: str) -> Path:
    return PCAP_DIR / f"dtmf_2833_{_NAMES.get(digit, digit)}.pcap"


def dtmf_available() -> bool:
    return all(dtmf_pcap(d).exists() for d in "0123456789")


_SDP = ("v=0\no=user1 53655765 2353687638 IN IP[local_ip_type] [local_ip]\ns=-\n"
        "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0 101\n"
        "a=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=sendrecv\n\n")


def carrier_dtmf_scenario(digits: str, *, wait_ms: int = 1500, gap_ms: int = 300, hold_ms: int = 4000) -> str:
    """INVITE [service] as the carrier (no auth: identified by source address), wait for the
    answer, key ``digits`` as RFC 2833 events ``wait_ms`` after it, stay ``hold_ms``, hang up.
    A BYE from Asterisk first (the flow hung up) also ends the scenario well."""
    head = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="carrier-dtmf">\n'
    invite = """  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:carrier@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:carrier@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" timeout="10000"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:carrier@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
    keys = f'  <pause milliseconds="{wait_ms}"/>\n'
    for i, digit in enumerate(digits):
        if i:
            keys += f'  <pause milliseconds="{gap_ms}"/>\n'
        keys += f'  <nop><action><exec play_pcap_audio="{dtmf_pcap(digit)}"/></action></nop>\n'
    # The hold is a wait for Asterisk's BYE; when none comes, we hang up. Asterisk re-INVITEs
    # the caller when the call is connected on (a connected-line update): answered, then waited on.
    ok = ('SIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\n')
    # SIPp waits at the first of consecutive receives: the timeout belongs on that one.
    hold = (f'  <label id="1"/>\n  <recv request="INVITE" optional="true" next="2" timeout="{max(hold_ms, 1)}"'
            ' ontimeout="3"/>\n  <recv request="BYE"/>\n'
            f'  <send next="9"><![CDATA[\n{ok}Content-Length: 0\n\n]]></send>\n'
            '  <label id="2"/>\n'
            f'  <send><![CDATA[\n{ok}Contact: <sip:carrier@[local_ip]:[local_port]>\n'
            'Content-Type: application/sdp\nContent-Length: [len]\n\n' + _SDP + ']]></send>\n'
            '  <recv request="ACK" next="1"/>\n'
            '  <label id="3"/>\n')
    bye = """  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:carrier@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <label id="9"/>
"""
    return head + invite + keys + hold + bye + "</scenario>\n"


def sipp_messages(proc: object) -> str:
    """The SIP messages of a background SIPp run (``-trace_msg``), for a failure message."""
    workdir = getattr(proc, "workdir", None)
    if workdir is None:
        return ""
    return "\n".join(p.read_text(errors="replace")[-6000:] for p in Path(workdir).glob("*_messages.log"))
