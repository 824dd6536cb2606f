"""The whitelists: everything accepted is safe to put into Asterisk config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning import validate
from provisioning.validate import Invalid

# Characters that mean something to Asterisk config or dialplan syntax.
DANGEROUS = set("\n\r\x00[];,$\"'{}\\|=<>`") | {chr(c) for c in range(0x20)}

INJECTIONS = ["a\nb", "acme]\n[evil", "x;comment", "a,b", "${SHELL(id)}", "nul\x00byte", 'say "hi"',
              "it's", "a" * 10_240, "tab\there", "[section]", "ACME\r\nexten => _X.,1,Dial(PJSIP/beta_101)",
              "ünïcode", ""]


@pytest.mark.parametrize("check", [validate.name, validate.display_name, validate.cnam, validate.sip_prefix,
                                   validate.extension_number, validate.e164, validate.email, validate.timezone])
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_corpus_is_refused(check: object, value: str) -> None:
    with pytest.raises(Invalid):
        check(value)  # type: ignore[operator]


@given(st.text(max_size=60))
def test_anything_accepted_is_free_of_syntax(text: str) -> None:
    for check in (validate.name, validate.display_name, validate.cnam):
        try:
            accepted = check(text)
        except Invalid:
            continue
        assert not (set(accepted) & DANGEROUS)
        assert accepted == accepted.strip()


def test_good_values_pass() -> None:
    assert validate.name("ACME Plumbing & Sons (North)") == "ACME Plumbing & Sons (North)"
    assert validate.cnam("ACME PLUMBING") == "ACME PLUMBING"
    assert validate.timezone("America/Chicago") == "America/Chicago"
    assert validate.e164("+15015550123") == "+15015550123"
    assert validate.extension_number("101") == "101"


@pytest.mark.parametrize("value", ["Mars/Olympus", "../../etc/passwd", "UTC/../x"])
def test_unknown_timezones_are_refused(value: str) -> None:
    with pytest.raises(Invalid):
        validate.timezone(value)


def test_emergency_numbers_cannot_be_extensions() -> None:
    with pytest.raises(Invalid, match="emergency"):
        validate.extension_number("911")


def test_cnam_is_at_most_15() -> None:
    with pytest.raises(Invalid):
        validate.cnam("A" * 16)


@pytest.mark.parametrize(("name", "prefix"), [("ACME Plumbing", "acmeplumbing"), ("Jo", "jo0"),
                                              ("Über Café Co", "bercafco"), ("!!", "000")])
def test_prefix_suggestion(name: str, prefix: str) -> None:
    assert validate.suggest_prefix(name) == prefix
    validate.sip_prefix(prefix)
