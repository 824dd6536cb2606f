"""Reads a PDF back: its text (pypdf, the test extra) and its images, as a reader would."""

from __future__ import annotations

import io

from pypdf import PdfReader


def pdf_pages(data: bytes) -> list[str]:
    """The extracted text of each page."""
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def pdf_text(data: bytes) -> str:
    return "\n".join(pdf_pages(data))


def pdf_images(data: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(io.BytesIO(data)).pages)
