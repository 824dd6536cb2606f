"""Pure parts of the API layer: token buckets, audit diffs, cursors, CSV cells."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.audit.recorder import changes
from controlplane.http.caller import Caller, CallerKind
from controlplane.http.exports import csv_cell as _cell
from controlplane.http.pagination import page_request
from controlplane.http.problems import Problem
from controlplane.http.ratelimit import RateLimiter
from controlplane.shared.pagination import PageRequest, Sort, decode_cursor, encode_cursor, next_page


def test_key_bucket_bursts_then_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(partner_limit=1000, clock=lambda: now[0])
    assert all(limiter.take("k", 100, "p").allowed for _ in range(100))
    refused = limiter.take("k", 100, "p")
    assert not refused.allowed and refused.which == "key" and refused.retry_after == 1  # 0.6 s, rounded up
    now[0] += 0.6
    assert limiter.take("k", 100, "p").allowed


def test_a_refused_request_takes_no_token() -> None:
    now = [0.0]
    limiter = RateLimiter(partner_limit=2, clock=lambda: now[0])
    assert limiter.take("a", 1, "p").allowed
    assert not limiter.take("a", 1, "p").allowed  # key empty: the partner's token stays
    assert limiter.take("b", 5, "p").allowed
    verdict = limiter.take("b", 5, "p")
    assert not verdict.allowed and verdict.which == "partner" and verdict.retry_after == 30


def test_write_implies_read() -> None:
    caller = Caller(CallerKind.API_KEY, "p", scopes=frozenset({"tenants:write"}))
    assert caller.allows("tenants:read") and caller.allows("tenants:write") and not caller.allows("calls:read")


def test_changes_keep_changed_fields_and_redact_secrets() -> None:
    before = {"name": "A", "secret": "s1", "updated_at": 1, "same": 1}
    after = {"name": "B", "secret": "s2", "updated_at": 2, "same": 1, "sip_password": "x"}
    assert changes(before, after) == {"name": {"before": "A", "after": "B"},
                                      "secret": {"before": "[redacted]", "after": "[redacted]"},
                                      "sip_password": {"before": None, "after": "[redacted]"}}


def test_cursor_round_trip_and_sort_binding() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    cursor = encode_cursor(at, "ten_1", Sort.UPDATED_DESC)
    assert decode_cursor(cursor, Sort.UPDATED_DESC).value == at
    with pytest.raises(Problem) as refused:
        decode_cursor(cursor, Sort.CREATED_ASC)
    assert refused.value.field == "cursor"
    page = page_request({"limit": "10", "sort": "-updated_at", "cursor": cursor})
    assert page == PageRequest(10, decode_cursor(cursor, Sort.UPDATED_DESC), Sort.UPDATED_DESC)
    for query, field in (({"limit": "101"}, "limit"), ({"sort": "name"}, "sort"), ({"cursor": "!!"}, "cursor")):
        with pytest.raises(Problem) as bad:
            page_request(query)
        assert bad.value.field == field


def test_next_page_cursor_names_the_last_row() -> None:
    class Row:
        def __init__(self, i: int) -> None:
            self.id, self.created_at = f"r{i}", datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)

    items, cursor = next_page([Row(i) for i in range(11)], PageRequest(10, None))
    assert len(items) == 10 and cursor is not None and decode_cursor(cursor).id == "r9"


def test_csv_cells_neutralise_formulas_but_keep_phone_numbers() -> None:
    assert _cell("=1+1") == "'=1+1" and _cell("@SUM") == "'@SUM" and _cell("-x") == "'-x"
    assert _cell("+15550001") == "+15550001" and _cell(None) == "" and _cell(3) == "3"
    assert _cell("-1500") == "-1500" and _cell(["a", "b"]) == "a b" and _cell("\t=cmd") == "'\t=cmd"
