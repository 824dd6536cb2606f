"""Logo files: the type from the bytes, the size cap, SVGs that could run code refused."""

from __future__ import annotations

import pytest

from controlplane.brand.logo import MAX_BYTES, LogoRejected, check

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#fff"/></svg>'


@pytest.mark.parametrize(("kind", "data"), [("image/png", PNG), ("image/jpeg", JPEG), ("image/svg+xml", SVG),
                                            ("image/svg+xml; charset=utf-8", b'<?xml version="1.0"?>\n' + SVG)])
def test_files_that_are_what_they_say(kind: str, data: bytes) -> None:
    assert check(kind, data).data == data


@pytest.mark.parametrize(("kind", "data", "why"), [
    ("image/png", JPEG, "not image/png"),                      # a JPEG sent as PNG
    ("image/jpeg", b"GIF89a....", "no PNG, JPEG or SVG"),
    ("image/gif", b"GIF89a....", "Content-Type must be"),
    ("application/octet-stream", PNG, "Content-Type must be"),
    ("image/svg+xml", PNG, "its bytes are image/png"),
    ("image/png", b"", "empty"),
    ("image/png", PNG + b"\x00" * MAX_BYTES, "at most"),
])
def test_files_refused(kind: str, data: bytes, why: str) -> None:
    with pytest.raises(LogoRejected, match=why):
        check(kind, data)


@pytest.mark.parametrize("svg", [
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink">'
    b'<image x:href="https://evil.example/t.png"/></svg>',
    b'<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><rect/></a></svg>',
    b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><div/></foreignObject></svg>',
    b'<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://evil.example/x.css);</style></svg>',
    b'<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(https://evil.example/p)"/></svg>',
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
    b'<html><svg/></html>',
    b'<svg xmlns="http://www.w3.org/2000/svg"><rect></svg>',
])
def test_svgs_that_could_run_or_fetch_are_refused(svg: bytes) -> None:
    with pytest.raises(LogoRejected):
        check("image/svg+xml", svg)


def test_svg_internal_references_are_fine() -> None:
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           b'<defs><linearGradient id="g"/></defs><rect fill="url(#g)"/><use xlink:href="#g"/></svg>')
    assert check("image/svg+xml", svg).content_type == "image/svg+xml"
