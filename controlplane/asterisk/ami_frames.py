"""AMI's wire format, read fast: CRLF header lines, a blank line ends a message.

At 100 calls/s Asterisk sends over a thousand events a second; building
panoramisk's case-insensitive ``Message`` for each was half of the daemon's CPU.
Events are read here into plain dicts instead; action responses (a few a
second) still go through panoramisk.
"""

from __future__ import annotations

from typing import Any

END = b"\r\n\r\n"


class Framer:
    """Bytes in, complete message blocks out (the banner line is dropped)."""

    def __init__(self) -> None:
        self._rest = b""
        self._banner = True

    def feed(self, data: bytes) -> list[str]:
        data = self._rest + data
        if self._banner:
            line, sep, after = data.partition(b"\r\n")
            if not sep:
                self._rest = data
                return []
            self._banner = False
            if line.startswith(b"Asterisk Call Manager/"):
                data = after
        *blocks, self._rest = data.split(END)
        # "replace", not panoramisk's ascii/"ignore": a caller name in UTF-8 survives.
        return [text for block in blocks if (text := block.decode("utf-8", "replace").strip("\r\n"))]


def is_plain_event(block: str) -> bool:
    """An unsolicited event: not a response, not part of an action's event list."""
    return block.startswith("Event: ") and "\r\nActionID: " not in block


def headers(block: str) -> dict[str, Any]:
    """``Key: value`` lines as a dict; a repeated key collects its values in a list."""
    out: dict[str, Any] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    return out
