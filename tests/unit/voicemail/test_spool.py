"""controlplane.voicemail.spool: app_voicemail's message files, read defensively."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlplane.voicemail.spool import (box_dir, delete_older, parse_info, remove_greeting, scan_box, spool_boxes,
                                          write_greeting)

INFO = """;
; Message Information file
;
[message]
origmailbox=101
context=acme-flows
exten=vm-101
callerid="Bob" <+14155550123>
origdate=Tue Dec  1 10:00:00 AM UTC 2026
origtime=1796119200
category=
msg_id=1796119200-00000001
flag=
duration=5
"""


def test_parse_info() -> None:
    assert parse_info(INFO) == ("1796119200-00000001", '"Bob" <+14155550123>',
                                datetime.fromtimestamp(1796119200, UTC), 5)


@pytest.mark.parametrize("text", ["", "[message]\nduration=5\n", "garbage", "[message]\norigtime=x\n",
                                  "[message]\norigtime=1\nmsg_id=../../etc\n"])
def test_unusable_info_is_skipped(text: str) -> None:
    assert parse_info(text) is None


def test_scan_finds_complete_messages_in_every_folder(tmp_path: Path) -> None:
    root = box_dir(tmp_path, "acme-vm", "101")
    for folder, n in (("INBOX", 0), ("Old", 1)):
        (root / folder).mkdir(parents=True)
        (root / folder / f"msg000{n}.txt").write_text(INFO.replace("00000001", f"0000000{n}"))
        (root / folder / f"msg000{n}.wav").write_bytes(b"RIFF")
    (root / "INBOX" / "msg0005.txt").write_text(INFO)  # no audio yet: still being written
    found = scan_box(tmp_path, "acme-vm", "101")
    assert sorted(m.msg_id for m in found) == ["1796119200-00000000", "1796119200-00000001"]
    assert spool_boxes(tmp_path) == [("acme-vm", "101")]
    assert delete_older(tmp_path, "acme-vm", "101", datetime(2027, 1, 1, tzinfo=UTC)) == 2
    assert scan_box(tmp_path, "acme-vm", "101") == []


@pytest.mark.parametrize(("context", "box"), [("acme-vm", "../1"), ("../x-vm", "101"), ("acme", "101"),
                                              ("acme-vm", "1")])
def test_box_paths_only_of_our_shape(tmp_path: Path, context: str, box: str) -> None:
    with pytest.raises(ValueError):
        box_dir(tmp_path, context, box)


def test_greetings(tmp_path: Path) -> None:
    write_greeting(tmp_path, "acme-vm", "101", b"RIFFwav")
    root = box_dir(tmp_path, "acme-vm", "101")
    assert (root / "unavail.wav").read_bytes() == (root / "busy.wav").read_bytes() == b"RIFFwav"
    remove_greeting(tmp_path, "acme-vm", "101")
    assert not list(root.glob("*.wav"))
