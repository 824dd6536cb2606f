"""The platform's one currency (ISO 4217): every ``*_micros`` amount the API shows is in it.

Set once at start from ``billing.currency`` (config.py validates it), then read by each
money-bearing view as its ``currency`` field's default: a process-wide constant like the
log configuration, so no store or service needs the config threaded through it.
"""

from __future__ import annotations

_currency = "USD"


def set_currency(code: str) -> None:
    global _currency
    _currency = code


def currency() -> str:
    return _currency
