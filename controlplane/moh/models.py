"""Music on hold: the tenant's class name and what an upload is called. Pure.

Every tenant has one class, ``moh-<sip prefix>``. Asterisk defines it (realtime views over
moh_files, migration 0026) once the tenant uploaded a file; until then a call asking for it
hears the platform's ``default`` class (res_musiconhold falls back to it for an unknown
class), so the name is always safe to use in a queue or a dialplan line.
"""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from provisioning.names import PREFIX_PATTERN

__all__ = ["MohFile", "MAX_FILES", "NAME_PATTERN", "check_file_name", "tenant_class"]

MAX_FILES = 50
NAME_PATTERN = "[a-z0-9-]{1,40}"
_NAME = re.compile(NAME_PATTERN)
_PREFIX = re.compile(PREFIX_PATTERN)


def tenant_class(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("not a tenant prefix")
    return f"moh-{prefix}"


def check_file_name(name: str) -> dict[str, str]:
    return {} if _NAME.fullmatch(name) else {"name": "1 to 40 of a-z, 0-9 and -"}


class MohFile(msgspec.Struct, kw_only=True):
    name: str
    bytes: int
    seconds: float
    created_at: datetime


class MohClass(msgspec.Struct, kw_only=True):
    """The tenant's class: its name in Asterisk and its files (empty: the default music plays)."""

    tenant_id: str
    moh_class: str
    files: list[MohFile]
