"""Dispatchable-address validation (seed 003, appendix C). Pure: no I/O.

PSAPs dispatch responders to a street address, so the rules refuse what they
cannot dispatch to (PO boxes, registered agents, virtual offices) and what
some PSAP databases reject (punctuation in the city). A refusal names the
field and the reason, with a suggestion when one is obvious ("Saint Louis").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY"
    " NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP".split())

_SPACES = re.compile(r"\s+")
# A building number (123, 123A, 12-34 as in Queens, 1/2 fractions) then at least one word.
_STREET = re.compile(r"(?P<number>[0-9]+[A-Za-z]?(?:-[0-9]+)?(?: 1/2)?) (?P<rest>[A-Za-z0-9][A-Za-z0-9 .#'/-]*)")
_STREET_WORD = re.compile(r"[A-Za-z]{2,}|[0-9]+(?:ST|ND|RD|TH)", re.IGNORECASE)
_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .#/-]{0,39}")
_CITY = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
_ZIP = re.compile(r"(?P<zip5>[0-9]{5})(?:-(?P<plus4>[0-9]{4}))?")
_PO_BOX = re.compile(
    r"\b(?:P\s*\.?\s*O\s*\.?\s*(?:BOX|B0X|DRAWER)|POST\s*OFFICE\s*(?:BOX|DRAWER)?|POB|LOCK\s*BOX|CALLER\s+BOX"
    r"|BOX\s*#?\s*[0-9]+|PMB|PRIVATE\s+MAIL\s*BOX)\b", re.IGNORECASE)
_AGENT = re.compile(
    r"\b(?:C/O|CARE\s+OF|REGISTERED\s+AGENTS?|STATUTORY\s+AGENT|VIRTUAL\s+OFFICE|MAIL\s*DROP|MAILBOX|CMRA"
    r"|AGENT\s+FOR\s+SERVICE)\b", re.IGNORECASE)
_CITY_ABBREVIATIONS = {"ST": "Saint", "STE": "Sainte", "FT": "Fort", "MT": "Mount", "PT": "Port"}


class AddressInvalid(ValueError):
    """The address cannot be registered; ``field`` names the part at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    city: str
    state: str
    zip: str
    unit: str | None = None  # suite, floor, unit: kept, dispatchers need it
    country: str = "US"

    def one_line(self) -> str:
        unit = f", {self.unit}" if self.unit else ""
        return f"{self.street}{unit}, {self.city}, {self.state} {self.zip}"


def _clean(value: object, field: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise AddressInvalid(field, "must be a string")
    if any(not c.isprintable() for c in value):
        # Refused, not folded into a space: what was sent is what a PSAP would read.
        raise AddressInvalid(field, "one line of printable characters (no newline, tab or control character)")
    text = _SPACES.sub(" ", value).strip()
    if not text:
        raise AddressInvalid(field, "is required")
    if len(text) > max_len:
        raise AddressInvalid(field, f"at most {max_len} characters")
    if not text.isascii() or not text.isprintable():
        raise AddressInvalid(field, "plain ASCII letters, digits and spaces only")
    return text


def suggest_city(city: str) -> str:
    """The punctuation-free spelling PSAPs accept: "St. Louis" -> "Saint Louis", "O'Fallon" -> "OFallon"."""
    words = []
    for word in re.split(r"[\s,/-]+", city.strip()):
        bare = re.sub(r"[^A-Za-z]", "", word)
        if word.endswith(".") and bare.upper() in _CITY_ABBREVIATIONS:
            bare = _CITY_ABBREVIATIONS[bare.upper()]
        if bare:
            words.append(bare)
    return " ".join(words)


def validate_street(value: object) -> str:
    street = _clean(value, "street", 100)
    if _PO_BOX.search(street):
        raise AddressInvalid("street", "a PO box cannot be dispatched to: give the street address where"
                                       " the phone is")
    if _AGENT.search(street):
        raise AddressInvalid("street", "a registered agent, c/o or virtual office address is not where the"
                                       " caller is: give the physical location")
    match = _STREET.fullmatch(street)
    if match is None:
        raise AddressInvalid("street", "a building number then the street name, e.g. \"1234 Main St\"")
    if not _STREET_WORD.search(match["rest"]):
        raise AddressInvalid("street", "the street name is missing after the building number")
    leading = re.match(r"[0-9]+", match["number"])
    assert leading is not None  # _STREET's number group starts with digits
    if int(leading.group()) == 0:
        raise AddressInvalid("street", "the building number cannot be 0")
    return street


def validate_unit(value: object) -> str | None:
    if value is None:
        return None
    unit = _clean(value, "unit", 40)
    if _PO_BOX.search(unit) or _AGENT.search(unit):
        raise AddressInvalid("unit", "a PO box, private mailbox or c/o is not a dispatchable location")
    if not _UNIT.fullmatch(unit):
        raise AddressInvalid("unit", "letters, digits, spaces and . # / - only, e.g. \"Suite 200\"")
    return unit


def validate_city(value: object) -> str:
    city = _clean(value, "city", 40)
    if not _CITY.fullmatch(city):
        suggestion = suggest_city(city)
        hint = f": use \"{suggestion}\"" if suggestion and _CITY.fullmatch(suggestion) else ""
        raise AddressInvalid("city", f"letters and spaces only, no punctuation (PSAPs reject it){hint}")
    if len(city.replace(" ", "")) < 2:
        raise AddressInvalid("city", "at least two letters")
    return city


def validate_state(value: object) -> str:
    state = _clean(value, "state", 2).upper()
    if state not in STATES:
        raise AddressInvalid("state", "a two-letter USPS state or territory code, e.g. AR")
    return state


def validate_zip(value: object) -> str:
    text = _clean(value, "zip", 10)
    match = _ZIP.fullmatch(text)
    if match is None:
        raise AddressInvalid("zip", "five digits, or ZIP+4 as 12345-6789")
    if match["zip5"] == "00000" or match["plus4"] == "0000":
        raise AddressInvalid("zip", "not a real ZIP code")
    return text


def validate(address: Address) -> Address:
    """The address, normalised (spaces collapsed, state upper-case), or AddressInvalid."""
    country = _clean(address.country, "country", 2).upper()
    if country != "US":
        raise AddressInvalid("country", "E911 registration covers US addresses only")
    street = validate_street(address.street)
    unit = validate_unit(address.unit)
    return replace(address, street=street, unit=unit, city=validate_city(address.city),
                   state=validate_state(address.state), zip=validate_zip(address.zip), country=country)
