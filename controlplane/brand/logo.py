"""Checks of an uploaded logo: its bytes must be what its Content-Type says. Pure.

The type is read from the magic bytes, never only from the header. An SVG is a
document a browser may run: one with scripts, event handlers, external references,
entities or embedded foreign content is refused (docs/brand.md), and it is served with
a Content-Security-Policy that runs nothing anyway.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

MAX_BYTES = 512 * 1024
TYPES = ("image/png", "image/jpeg", "image/svg+xml")
SVG_NS = "http://www.w3.org/2000/svg"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
# Elements that run code, load documents or embed HTML.
_FORBIDDEN = frozenset({"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"})
_HREF = ("href", "{http://www.w3.org/1999/xlink}href")
_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)


class LogoRejected(ValueError):
    """What is wrong with the file, for the 422 naming ``logo``."""


@dataclass(frozen=True)
class Logo:
    content_type: str
    data: bytes


def sniff(data: bytes) -> str | None:
    """The image type the bytes are, by their signature; None when none of ours."""
    if data.startswith(_PNG):
        return "image/png"
    if data.startswith(_JPEG):
        return "image/jpeg"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml") or head.startswith(b"<svg") or head.startswith(b"<!--"):
        return "image/svg+xml"
    return None


def check(content_type: str, data: bytes) -> Logo:
    """The logo as stored; LogoRejected saying why otherwise."""
    declared = content_type.split(";")[0].strip().lower()
    if declared not in TYPES:
        raise LogoRejected(f"Content-Type must be one of {', '.join(TYPES)}, not {declared or 'none'}")
    if not data:
        raise LogoRejected("the file is empty")
    if len(data) > MAX_BYTES:
        raise LogoRejected(f"the file has {len(data)} bytes; at most {MAX_BYTES} ({MAX_BYTES // 1024} KiB)")
    actual = sniff(data)
    if actual != declared:
        raise LogoRejected(f"the file is not {declared}" + (f" (its bytes are {actual})" if actual else
                                                            " (its bytes are no PNG, JPEG or SVG)"))
    if declared == "image/svg+xml":
        check_svg(data)
    return Logo(declared, data)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def check_svg(data: bytes) -> None:
    """Refuse an SVG that could run code or fetch anything when shown."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LogoRejected("an SVG must be UTF-8 text") from None
    # A DTD is where entity expansion bombs and external entities live; logos need none.
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise LogoRejected("an SVG with a DOCTYPE or ENTITY declaration is not accepted")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise LogoRejected(f"not well-formed SVG ({exc})") from None
    if _local(root.tag) != "svg" or root.tag not in ("svg", f"{{{SVG_NS}}}svg"):
        raise LogoRejected("the document's root element is not <svg>")
    for element in root.iter():
        name = _local(element.tag)
        if name in _FORBIDDEN:
            raise LogoRejected(f"an SVG with <{name}> is not accepted (scripts and embedded content)")
        for attribute, value in element.attrib.items():
            attr = _local(attribute)
            if attr.startswith("on"):
                raise LogoRejected(f"an SVG with event handler attributes ({attr}) is not accepted")
            if attribute in _HREF and not value.strip().startswith("#"):
                raise LogoRejected("an SVG referring to other documents (href) is not accepted")
            if "javascript:" in value.lower() or _external_url(value):
                raise LogoRejected("an SVG referring to other documents (url()) is not accepted")
        if name == "style" and element.text and ("@import" in element.text.lower() or _external_url(element.text)):
            raise LogoRejected("an SVG style loading other documents is not accepted")


def _external_url(text: str) -> bool:
    return any(not target.startswith("#") for target in _URL.findall(text))
