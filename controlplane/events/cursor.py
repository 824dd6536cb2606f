"""Opaque feed cursors. Pure.

A cursor is the position of the last event a poller has seen. Positions are
handed out to committed events only, increasing (see store.sequence_pending), so
"after this position" never skips an event that committed after the poller read.
"""

from __future__ import annotations

import base64
import binascii

_PREFIX = "c1:"


class BadCursor(ValueError):
    pass


def encode(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("not a cursor returned by this API") from None
    if not text.startswith(_PREFIX) or not text[len(_PREFIX):].isdigit():
        raise BadCursor("not a cursor returned by this API")
    return int(text[len(_PREFIX):])
