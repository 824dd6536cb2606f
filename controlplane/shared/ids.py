"""Resource ids: ``<kind>_<16 hex>`` (``ten_...``, ``did_...``), random, so they reveal no count."""

from __future__ import annotations

import secrets


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"
