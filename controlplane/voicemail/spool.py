"""app_voicemail's spool, as the daemon sees it (``<astspooldir>/voicemail/<context>/<box>/``).

Asterisk owns the boxes' folders (it numbers, moves and renumbers messages as phones listen
and delete). The daemon only reads new messages from them (importing each once, by its
``msg_id``), writes the greetings, and deletes what retention or a tenant purge removes.
"""

from __future__ import annotations

import configparser
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["SpoolMessage", "box_dir", "delete_older", "parse_info", "remove_greeting", "scan_box", "spool_boxes",
           "write_greeting"]

FOLDERS = ("INBOX", "Old", "Work", "Family", "Friends", "Urgent")
GREETINGS = ("unavail", "busy")
_CONTEXT = re.compile(r"[a-z0-9]{3,12}-vm")
_BOX = re.compile(r"[0-9]{2,6}")
_MSG = re.compile(r"msg[0-9]{4}")
_MSG_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True, slots=True)
class SpoolMessage:
    msg_id: str
    caller: str
    received_at: datetime
    duration_s: int
    wav: Path
    info: Path


def parse_info(text: str) -> tuple[str, str, datetime, int] | None:
    """(msg_id, caller id, received at, duration) from a ``msgNNNN.txt``; None when unusable."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"))
    try:
        parser.read_string(text)
        section = parser["message"]
        origtime = int(section.get("origtime", ""))
        duration = max(0, int(section.get("duration", "0") or 0))
    except (configparser.Error, KeyError, ValueError):
        return None
    msg_id = section.get("msg_id", "") or str(origtime)
    if not _MSG_ID.fullmatch(msg_id):
        return None
    caller = " ".join(section.get("callerid", "").split())[:200]
    return msg_id, caller, datetime.fromtimestamp(origtime, UTC), duration


def box_dir(spool: Path, context: str, box: str) -> Path:
    if not _CONTEXT.fullmatch(context) or not _BOX.fullmatch(box):
        raise ValueError(f"voicemail box {box!r}@{context!r} of the wrong shape")
    return spool / "voicemail" / context / box


def scan_box(spool: Path, context: str, box: str) -> list[SpoolMessage]:
    """Every message of the box, in any folder (blocking: run in a thread)."""
    found = []
    root = box_dir(spool, context, box)
    for folder in FOLDERS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for info in sorted(directory.glob("msg*.txt")):
            wav = info.with_suffix(".wav")
            if not _MSG.fullmatch(info.stem) or not wav.is_file():
                continue  # a message still being written has its .txt only at the end
            try:
                parsed = parse_info(info.read_text("utf-8", "replace"))
            except OSError:
                continue
            if parsed is not None:
                found.append(SpoolMessage(*parsed, wav=wav, info=info))
    return found


def spool_boxes(spool: Path) -> list[tuple[str, str]]:
    """(context, box) of every box directory of our shape."""
    root = spool / "voicemail"
    if not root.is_dir():
        return []
    return [(c.name, b.name) for c in sorted(root.iterdir()) if c.is_dir() and _CONTEXT.fullmatch(c.name)
            for b in sorted(c.iterdir()) if b.is_dir() and _BOX.fullmatch(b.name)]


def delete_older(spool: Path, context: str, box: str, before: datetime) -> int:
    """Delete the box's messages received before ``before``; Asterisk renumbers the rest
    when the box is next opened."""
    count = 0
    for message in scan_box(spool, context, box):
        if message.received_at < before:
            for path in message.info.parent.glob(f"{message.info.stem}.*"):
                path.unlink(missing_ok=True)
            count += 1
    return count


def remove_context(spool: Path, context: str) -> None:
    """A purged tenant's boxes."""
    if not _CONTEXT.fullmatch(context):
        raise ValueError(f"voicemail context {context!r} of the wrong shape")
    shutil.rmtree(spool / "voicemail" / context, ignore_errors=True)


def write_greeting(spool: Path, context: str, box: str, wav: bytes) -> None:
    """The box's unavailable and busy greetings (app_voicemail plays ``<greeting>.wav``)."""
    directory = box_dir(spool, context, box)
    directory.mkdir(parents=True, exist_ok=True)
    for name in GREETINGS:
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(wav)
        tmp.replace(directory / f"{name}.wav")


def remove_greeting(spool: Path, context: str, box: str) -> None:
    directory = box_dir(spool, context, box)
    for name in GREETINGS:
        (directory / f"{name}.wav").unlink(missing_ok=True)
