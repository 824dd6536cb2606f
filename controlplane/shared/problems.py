"""The problem a service refuses a request with; ``controlplane.http.problems`` renders it
as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One input at fault: its dotted path and what is wrong with it."""

    field: str
    message: str


class Problem(Exception):
    """Raised by handlers and services; rendered once, by the error middleware.

    ``field`` names the input at fault (a JSON pointer-ish dotted path) for 422s;
    ``errors`` lists every input at fault when a request has several (the first is ``field``).
    """

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field if field is not None or not errors else errors[0].field
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}
        # a 422 lists its fields at fault; another status naming a field (a 409's cap) does not
        self.errors = errors or ([FieldError(self.field, detail)] if self.field is not None and status == 422 else [])
