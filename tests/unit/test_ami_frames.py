"""AMI framing: blocks across arbitrary chunk boundaries, the banner, repeated headers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controlplane.asterisk.ami_frames import Framer, headers, is_plain_event
from controlplane.asterisk.events import Newchannel, parse_ami_event

STREAM = ("Asterisk Call Manager/9.0.0\r\n"
          "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
          "Event: Newchannel\r\nChannel: PJSIP/acme_101-00000001\r\nCallerIDName: Zoë\r\n"
          "Uniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n"
          "Response: Success\r\nActionID: 2\r\nOutput: line one\r\nOutput: line two\r\n\r\n"
          "Event: CoreShowChannel\r\nActionID: 3\r\nChannel: PJSIP/x-1\r\n\r\n").encode()


@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=12))
def test_blocks_survive_any_chunking(cuts: list[int]) -> None:
    framer, blocks, start = Framer(), [], 0
    for cut in [*sorted(set(cuts)), len(STREAM)]:
        blocks += framer.feed(STREAM[start:cut])
        start = cut
    assert len(blocks) == 4
    assert blocks[0].startswith("Response: Success") and "Zoë" in blocks[1]


def test_plain_events_and_headers() -> None:
    blocks = Framer().feed(STREAM)
    assert [is_plain_event(b) for b in blocks] == [False, True, False, False]
    assert headers(blocks[2])["Output"] == ["line one", "line two"]
    event = parse_ami_event(headers(blocks[1]))
    assert isinstance(event, Newchannel)
    assert (event.channel, event.caller_id_name, event.linkedid) == ("PJSIP/acme_101-00000001", "Zoë", "1.1")
