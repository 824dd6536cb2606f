"""The control-character rule of every request (controlplane/http/inputs.py), without I/O."""

from __future__ import annotations

import pytest

from controlplane.http.inputs import _walk, control_character


@pytest.mark.parametrize(("text", "named"), [("a\x00b", "NUL"), ("a\nb", "a newline"), ("\r", "a carriage return"),
                                            ("a\tb", "a tab"), ("\x1b[2J", "control character U+001B"),
                                            ("x\x7f", "control character U+007F")])
def test_control_characters_are_found_and_named(text: str, named: str) -> None:
    assert control_character(text) == named


@pytest.mark.parametrize("text", ["", "plain", "Zoë Ünïcode 東京", "+1 (415) 555-0123", "a\u00a0b"])
def test_printable_text_passes(text: str) -> None:
    assert control_character(text) is None


def test_json_fields_are_named_by_their_dotted_path() -> None:
    assert _walk({"address": {"street": "1 Main\nSt"}}, "") == ("address.street", "a newline")
    assert _walk({"event_types": ["ok", "b\x00d"]}, "") == ("event_types", "NUL")
    assert _walk({"na\tme": "x"}, "") == ("na\tme", "a tab")
    assert _walk("bare\x01", "") == ("body", "control character U+0001")
    assert _walk({"n": 1, "ok": [True, None, {"deep": "fine"}]}, "") is None
