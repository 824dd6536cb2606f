"""CNAM carrier rules. Pure.

At most 15 characters; letters, digits, space and ``& - . , '``; at least one
letter or digit; a small profanity list is refused (carriers fail such a sync).
"""

from __future__ import annotations

import re

MAX_LENGTH = 15
_ALLOWED = re.compile(r"[A-Za-z0-9 &\-.,']+")
_SPACES = re.compile(r" {2,}")
_PROFANITY = frozenset({"FUCK", "SHIT", "CUNT", "BITCH", "ASSHOLE", "DICK", "PUSSY", "BASTARD", "WHORE",
                        "SLUT", "NIGGER", "FAGGOT", "COCK", "MOTHERFUCKER", "PISS"})


class CnamInvalid(ValueError):
    pass


def validate(value: str) -> str:
    """The CNAM as carriers will store it (spaces collapsed), or CnamInvalid with the reason."""
    text = _SPACES.sub(" ", value.strip())
    if not text:
        raise CnamInvalid("is empty")
    if len(text) > MAX_LENGTH:
        raise CnamInvalid(f"at most {MAX_LENGTH} characters (carrier rule), got {len(text)}")
    if not _ALLOWED.fullmatch(text):
        bad = sorted({c for c in text if not _ALLOWED.fullmatch(c)})
        raise CnamInvalid(f"only letters, digits, space and & - . , ' are allowed, not {''.join(bad)!r}")
    if not any(c.isalnum() for c in text):
        raise CnamInvalid("needs at least one letter or digit")
    # Per word, punctuation dropped: "F.U.C.K" is caught, "Scunthorpe" and "Glass Hole" are not.
    words = {re.sub(r"[^A-Z]", "", w) for w in text.upper().split(" ")}
    words |= {w for w in re.findall(r"[A-Z]+", text.upper())}
    if words & _PROFANITY:
        raise CnamInvalid("refused by carrier content rules")
    return text


def effective(did_cnam: str | None, tenant_default: str | None) -> str | None:
    """The per-DID override wins over the tenant default."""
    return did_cnam or tenant_default
