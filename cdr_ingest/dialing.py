"""The dialled-number rule: which dial strings leave for the carrier, and as which number.

One owner, three readers that must agree on every string:

- the dialplan: ``provisioning.dialplan`` renders ``FORMS`` as the tenant's outbound
  extension patterns, so a string no form matches gets no channel at all (PJSIP
  answers 404, or 484 for a proper prefix of a form when overlap dialling is on);
- admission (``controlplane.limits``) rates exactly the number the dialplan hands the
  trunk, and refuses anything that is not one;
- the call record (``cdr_ingest.records``): its callee and class are of that number.

The rule (NANP dialling, default country 1): the normalisations are national 10
digits -> ``+1``, ``1`` + 10 digits -> ``+``, the international prefix ``011`` -> ``+``;
after them a number is ``+`` and ASCII digits only: ``+1`` + NPA + NXX + 4 digits
(11 digits) with NPA and NXX starting 2-9 and neither an N11 service code; any other
country code (first digit 2-9) 8 to 15 digits in all (E.164). Anything else is
refused, never cleaned up: ``+1415555*0123`` is not ``+14155550123``.

The forms are Asterisk patterns of fixed length (``X`` ``N`` ``[..]`` and literal
digits or ``+``): Asterisk matches them in the dialplan, ``destination`` matches the
very same strings here (each pattern compiled to a regular expression).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["DialForm", "FORMS", "destination", "is_destination"]

# NPA and NXX: first digit 2-9, and not N11 (211, 311, ... 911 are service codes).
_N11_FREE = ("N[02-9]X", "N1[02-9]")
_NANP = tuple(npa + nxx + "XXXX" for npa in _N11_FREE for nxx in _N11_FREE)
# E.164 outside country code 1: 8-15 digits including the country code (ITU-T E.164 max 15).
INTL_DIGITS = range(8, 16)
_INTL = tuple("N" + "X" * (n - 1) for n in INTL_DIGITS)
_CLASSES = {"X": "[0-9]", "N": "[2-9]", "Z": "[1-9]"}


def _regex(pattern: str) -> re.Pattern[str]:
    """An Asterisk pattern of fixed length (no ``.``/``!``) as a regular expression."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1:end]
            if not re.fullmatch(r"[0-9-]+", body):
                raise ValueError(f"pattern class {body!r}: digits and ranges only")
            out.append(f"[{body}]")
            i = end + 1
            continue
        if ch in _CLASSES:
            out.append(_CLASSES[ch])
        elif ch.isascii() and (ch.isdigit() or ch == "+"):
            out.append(re.escape(ch))
        else:
            raise ValueError(f"pattern {pattern!r}: {ch!r} is not allowed in a dial form")
        i += 1
    return re.compile("".join(out), re.ASCII)


@dataclass(frozen=True, slots=True)
class DialForm:
    """One accepted shape: the dialled string matches ``pattern`` (an Asterisk pattern,
    without its ``_``); the trunk gets ``prepend`` + the string minus its first ``strip``
    characters."""

    pattern: str
    strip: int = 0
    prepend: str = ""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", _regex(self.pattern))

    @property
    def canonical(self) -> bool:
        """Already the E.164 number the trunk gets (the dialplan's dialling extensions)."""
        return self.strip == 0 and self.prepend == ""

    def rewrite(self, dialed: str) -> str:
        return self.prepend + dialed[self.strip:]


FORMS: tuple[DialForm, ...] = (
    *(DialForm("+1" + p) for p in _NANP),
    *(DialForm("+" + p) for p in _INTL),
    *(DialForm(p, 0, "+1") for p in _NANP),  # national: 2125550100
    *(DialForm("1" + p, 0, "+") for p in _NANP),  # 1 + national: 12125550100
    *(DialForm("0111" + p, 3, "+") for p in _NANP),  # 011 + 1 + national
    *(DialForm("011" + p, 3, "+") for p in _INTL),  # 011 + international
)
# All forms in one expression (they are disjoint): one match per call, whatever the form.
_ANY_FORM = re.compile("|".join(f"(?P<f{i}>{f.regex.pattern})" for i, f in enumerate(FORMS)), re.ASCII)
_MAX_LEN = 18  # "011" + 15 digits: the longest accepted string; longer ones skip the regexes


def destination(dialed: object) -> str | None:
    """The E.164 number the carrier trunk receives for ``dialed``, or None: refused.

    Total: any input (non-strings, letters, separators, non-ASCII digits) yields None
    or a number; nothing raises.
    """
    if not isinstance(dialed, str) or not dialed or len(dialed) > _MAX_LEN:
        return None
    if type(dialed) is str:
        return _destination(dialed)
    return _destination.__wrapped__(dialed)


@lru_cache(maxsize=8192)
def _destination(dialed: str) -> str | None:
    # A call's number is looked at several times (admission, classification, rating): matched once.
    match = _ANY_FORM.fullmatch(dialed)
    if match is None or match.lastgroup is None:
        return None
    return FORMS[int(match.lastgroup[1:])].rewrite(dialed)


def is_destination(number: object) -> bool:
    """``number`` is itself a number the trunk may receive (the canonical E.164 form)."""
    return isinstance(number, str) and destination(number) == number
