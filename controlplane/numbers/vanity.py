"""Toll-free vanity patterns (``877-555-XXXX``, ``8XX-OUR-FOOD``). Pure.

A pattern is ten NANP positions: digits, letters (the phone keypad's digit)
and ``X`` (any digit - so the letter X itself cannot be asked for, as on the
portal). Separators are ignored; a leading 1 or +1 is allowed.
"""

from __future__ import annotations

import re

KEYPAD = {c: d for d, letters in {"2": "ABC", "3": "DEF", "4": "GHI", "5": "JKL", "6": "MNO",
                                  "7": "PQRS", "8": "TUV", "9": "WYZ"}.items() for c in letters}
TOLL_FREE_NPAS = ("800", "833", "844", "855", "866", "877", "888")
WILDCARD = "X"
_SEPARATORS = re.compile(r"[\s().-]")


class BadPattern(ValueError):
    pass


def parse(pattern: str) -> str:
    """Ten characters, each a digit or ``X``; BadPattern names what is wrong."""
    text = _SEPARATORS.sub("", pattern.upper())
    if text.startswith("+1"):
        text = text[2:]
    elif len(text) == 11 and text.startswith("1"):
        text = text[1:]
    if len(text) != 10:
        raise BadPattern("a vanity pattern has 10 positions after the 1, e.g. 877-555-XXXX")
    out = []
    for ch in text:
        if ch.isdigit() or ch == WILDCARD:
            out.append(ch)
        elif ch in KEYPAD:
            out.append(KEYPAD[ch])
        else:
            raise BadPattern(f"{ch!r} is not a digit, a letter or X")
    parsed = "".join(out)
    if parsed[0] != "8" or not any(_fits(parsed[:3], npa) for npa in TOLL_FREE_NPAS):
        raise BadPattern("toll-free numbers start with 800, 833, 844, 855, 866, 877 or 888")
    return parsed


def _fits(pattern: str, digits: str) -> bool:
    return len(pattern) == len(digits) and all(p == WILDCARD or p == d for p, d in zip(pattern, digits))


def matches(parsed: str, number: str) -> bool:
    """Whether an E.164 number (``+18776873663``) fits a parsed pattern."""
    return number.startswith("+1") and _fits(parsed, number[2:])


def sql_like(parsed: str) -> str:
    """The LIKE pattern: fixed leading digits make it an index range scan."""
    return "+1" + parsed.replace(WILDCARD, "_")


def spell(word: str) -> str:
    """Keypad digits of a word (``FOOD`` -> ``3663``); X maps to 9 here, as on a keypad."""
    return "".join(KEYPAD.get(c, "9" if c == "X" else c) for c in word.upper())
