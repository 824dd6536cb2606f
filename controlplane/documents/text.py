"""How numbers are written on a document. Exact: a document never rounds what it prints,
so it can never disagree with the record (line amounts and totals are whole cents already)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICROS = 1_000_000


def money(micros: int, currency: str) -> str:
    """``1,234.56 USD``; at least two decimals, more only when the value has them (0.025 USD)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    decimals = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole:,}.{decimals} {currency}"


def percent(rate: str) -> str:
    """An exact decimal percentage as printed: "8.50" -> "8.5%" (never rounded)."""
    try:
        value = Decimal(rate)
    except InvalidOperation:
        return f"{rate}%"
    return f"{format(value.normalize(), 'f')}%"


def latin1(text: str) -> str:
    """The core PDF fonts are Latin-1: a character outside it prints as "?" rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")


def rgb(color: str | None, default: tuple[int, int, int] = (37, 99, 235)) -> tuple[int, int, int]:
    """``#rrggbb`` -> (r, g, b); anything else -> the default (#2563eb, as in mails)."""
    if color is None or len(color) != 7 or not color.startswith("#"):
        return default
    try:
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    except ValueError:
        return default


def ink_on(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """White text on a dark brand color, black on a light one (a partner may pick #ffff66)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 160 else (255, 255, 255)
