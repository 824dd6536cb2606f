"""SIPp for the voicemail and recording e2e: a caller that talks (a tone replayed as RTP from a
pcap this module writes) for a known time after a known wait, then hangs up.

The pcap is G.711 mu-law (payload 0, what the scenarios offer) in 20 ms packets: Ethernet/IPv4/UDP
frames SIPp's ``play_pcap_audio`` replays with their own timing to the far end's media address.
"""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
_SDP = ("v=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\n"
        "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n")
_CONTACT = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"


def _ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _pcap(path: Path, packets: list[tuple[int, bytes]]) -> Path:
    """(microseconds, RTP packet) as Ethernet/IPv4/UDP frames of a pcap."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n, (micros, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", 4000, 4002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def dtmf_key_pcap(path: Path, digit: str, press: int) -> Path:
    """One key press as RFC 4733 telephone-events (payload 101): 100 ms, then three end packets.
    ``press`` numbers the presses of a call: each gets its own RTP timestamp and sequence numbers,
    as a phone's do (Asterisk drops an event whose timestamp repeats the last one's)."""
    ts, seq = 8000 * (press + 1) * 4, 100 * (press + 1)
    packets = []
    for i in range(8):
        end = i >= 5
        duration = 160 * min(i + 1, 6)
        payload = struct.pack("!BBH", _EVENTS[digit], (0x80 if end else 0) | 10, duration)
        header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | 101, (seq + i) & 0xFFFF, ts, 0x1234ABCD)
        packets.append((i * 20_000, header + payload))
    return _pcap(path, packets)


def tone_pcap(path: Path, seconds: float, *, freq: float = 440.0, amplitude: int = 8000) -> Path:
    """``seconds`` of a sine as RTP (PCMU, 20 ms packets) in a pcap; returns ``path``."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    packets = int(round(seconds * 50))
    for n in range(packets):
        payload = bytes(_ulaw(int(amplitude * math.sin(2 * math.pi * freq * (n * 160 + i) / 8000)))
                        for i in range(160))
        rtp = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0, n & 0xFFFF, n * 160, 0x1234ABCD) + payload
        udp = struct.pack("!HHHH", 4000, 4002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        micros = n * 20_000
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


def _reply(status: str, extra: str = "", body: str = "") -> str:
    length = "[len]" if body else "0"
    return (f"  <send><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n"
            f"[last_CSeq:]\n{extra}Content-Length: {length}\n\n{body}]]></send>\n")


def talking_caller_scenario(pcap: Path, *, wait_ms: int, talk_ms: int, answer_timeout_ms: int = 60000,
                            keys_first: Sequence[Path] = ()) -> str:
    """A phone (digest auth: -au/-ap, [field0] the user) calls [service]; once answered it keys
    ``keys_first`` (if any), waits ``wait_ms``, replays ``pcap`` for ``talk_ms`` and hangs up.
    A re-INVITE from Asterisk while it waits, keys or talks (a connected-line update) is answered
    and the wait goes on."""
    reinvite = (_reply("200 OK", _CONTACT + "Content-Type: application/sdp\n", _SDP)
                + '  <recv request="ACK" next="{back}"/>\n')
    body = _HEAD.format(name="talking-caller")
    body += _answered_call(answer_timeout_ms)
    for i, key in enumerate(keys_first):  # DTMF key presses (RFC 4733 pcaps) before the talking,
        # each after 400 ms in which a re-INVITE is answered too (it came there once, in CI)
        wait, done = 10 + 2 * i, 11 + 2 * i
        body += (f'  <label id="{wait}"/>\n  <recv request="INVITE" timeout="400" ontimeout="{done}"/>\n'
                 + reinvite.format(back=wait) + f'  <label id="{done}"/>\n'
                 f'  <nop><action><exec play_pcap_audio="{key}"/></action></nop>\n')
    body += (f'  <label id="1"/>\n  <recv request="INVITE" timeout="{max(wait_ms, 1)}" ontimeout="3"/>\n'
             + reinvite.format(back=1) + '  <label id="3"/>\n'
             f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
             f'  <label id="4"/>\n  <recv request="INVITE" timeout="{max(talk_ms, 1)}" ontimeout="6"/>\n'
             + reinvite.format(back=4) + '  <label id="6"/>\n')
    body += _HANG_UP
    return body + "</scenario>\n"


def gsm_seconds(path: Path) -> float:
    """The length of a raw GSM sound file (Asterisk's core sounds): 33 bytes per 20 ms."""
    return path.stat().st_size / 33 * 0.02


def unanswered_phone_scenario(*, invite_timeout_ms: int = 30000) -> str:
    """A registered phone that rings and never answers: 180, then the CANCEL gets 200 and the
    INVITE 487. A NOTIFY before the call (the message summary a registration gets: its own
    Call-ID, so SIPp runs it as a call of its own) is answered."""
    tag = ";tag=[call_number]"
    ringing = ("  <send><![CDATA[\nSIP/2.0 180 Ringing\n[last_Via:]\n[last_From:]\n[last_To:]" + tag
               + "\n[last_Call-ID:]\n[last_CSeq:]\n" + _CONTACT + "Content-Length: 0\n\n]]></send>\n")
    cancel_ok = ("  <send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]" + tag
                 + "\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n")
    terminated = ("  <send><![CDATA[\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n[last_To:]" + tag
                  + "\n[last_Call-ID:]\nCSeq: [last_cseq_number] INVITE\nContent-Length: 0\n\n]]></send>\n")
    return (_HEAD.format(name="unanswered-phone")
            + '  <label id="1"/>\n  <recv request="NOTIFY" optional="true" next="2"/>\n'
            + f'  <recv request="INVITE" timeout="{invite_timeout_ms}" next="3"/>\n'
            + '  <label id="2"/>\n' + _reply("200 OK").replace("<send>", '<send next="1">', 1)
            + '  <label id="3"/>\n' + ringing
            + '  <recv request="CANCEL" timeout="60000"/>\n' + cancel_ok + terminated
            + '  <recv request="ACK"/>\n' + "</scenario>\n")


def await_mwi(port: int, timeout: float) -> str:
    """Listen on ``port`` (a phone just registered from it) for a message-summary NOTIFY; answer
    each with 200 and return the first body saying a message waits ("" if none in time)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                break
            text = data.decode(errors="replace")
            if not text.startswith("NOTIFY "):
                continue
            head, _, body = text.partition("\r\n\r\n")
            keep = [line for line in head.split("\r\n")[1:]
                    if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
            sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(), peer)
            if "Messages-Waiting: yes" in body:
                return body
    return ""


def answering_phone_scenario(*, invite_timeout_ms: int = 30000, bye_timeout_ms: int = 30000) -> str:
    """A registered phone that answers one call (NOTIFYs before it answered with 200) and waits
    for the BYE."""
    tag = ";tag=[call_number]"
    answered = ("  <send retrans=\"500\"><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]" + tag
                + "\n[last_Call-ID:]\n[last_CSeq:]\n" + _CONTACT + "Content-Type: application/sdp\n"
                "Content-Length: [len]\n\n" + _SDP + "]]></send>\n")
    return (_HEAD.format(name="answering-phone")
            + '  <label id="1"/>\n  <recv request="NOTIFY" optional="true" next="2"/>\n'
            + f'  <recv request="INVITE" timeout="{invite_timeout_ms}" next="3"/>\n'
            + '  <label id="2"/>\n' + _reply("200 OK").replace("<send>", '<send next="1">', 1)
            + '  <label id="3"/>\n' + answered
            + f'  <recv request="ACK"/>\n  <recv request="BYE" timeout="{bye_timeout_ms}"/>\n'
            + _reply("200 OK") + "</scenario>\n")


_SDP_DTMF = ("v=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\n"
             "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0 101\n"
             "a=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=sendrecv\n\n")

# A phone's INVITE ({cseq}; {auth}: "" or "[authentication]\n") and the ACK of its answer.
_INVITE = """  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
{auth}Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

""" + _SDP_DTMF + "]]></send>\n"
_ACK = """  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
_HANG_UP = """  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
"""


def _answered_call(answer_timeout_ms: int) -> str:
    """The phone's INVITE, challenged (401) and sent again with its credentials, answered within
    ``answer_timeout_ms`` and ACKed."""
    return (_INVITE.format(cseq=1, auth="")
            + '  <recv response="100" optional="true"/>\n  <recv response="401" auth="true"/>\n'
            + _ACK.format(cseq=1) + _INVITE.format(cseq=2, auth="[authentication]\n")
            + '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'
            + '  <recv response="183" optional="true"/>\n'
            + f'  <recv response="200" rrs="true" timeout="{answer_timeout_ms}"/>\n'
            + _ACK.format(cseq=2))


def keying_caller_scenario(keys: list[tuple[int, str]], workdir: Path, *, end_ms: int, we_hang_up: bool) -> str:
    """A phone (digest auth) calls [service]; once answered, for each (wait ms, digits) it waits
    and keys the digits as RFC 2833 events (300 ms apart). Then either Asterisk hangs up within
    ``end_ms`` (``we_hang_up`` false: its BYE is expected) or we hang up after ``end_ms``."""
    head = _HEAD.format(name="keying-caller")
    body = head + _answered_call(10000)
    press = 0
    for wait_ms, digits in keys:
        body += f'  <pause milliseconds="{wait_ms}"/>\n'
        for i, digit in enumerate(digits):
            if i:
                body += '  <pause milliseconds="300"/>\n'
            pcap = dtmf_key_pcap(workdir / f"key{press}.pcap", digit, press)
            body += f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
            press += 1
    if not we_hang_up:
        return body + (f'  <recv request="BYE" timeout="{end_ms}"/>\n' + _reply("200 OK") + "</scenario>\n")
    body += f'  <pause milliseconds="{end_ms}"/>\n'
    body += _HANG_UP
    return body + "</scenario>\n"
