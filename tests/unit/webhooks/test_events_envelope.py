"""The envelope, the registry and feed cursors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, strategies as st

from controlplane.events import cursor, registry
from controlplane.events.envelope import build_event, build_events, encode_data, rfc3339


class TenantData(msgspec.Struct):
    tenant_id: str
    name: str


def test_envelope_fields_in_order() -> None:
    at = datetime(2026, 5, 4, 14, 23, 45, 123000, tzinfo=UTC)
    event = build_event("tenant.created", partner_id="ptr_1", data={"tenant": {"id": "t"}}, created_at=at)
    assert list(json.loads(event.body)) == ["id", "type", "created_at", "partner_id", "data"]
    assert json.loads(event.body) == {"id": event.id, "type": "tenant.created",
                                      "created_at": "2026-05-04T14:23:45.123Z", "partner_id": "ptr_1",
                                      "data": {"tenant": {"id": "t"}}}


def test_structs_and_mappings_both_encode() -> None:
    event = build_event("tenant.created", partner_id="p", data=TenantData("t1", "ACME"))
    assert json.loads(event.body)["data"] == {"tenant_id": "t1", "name": "ACME"}
    from types import MappingProxyType
    assert encode_data(MappingProxyType({"a": 1})) == b'{"a":1}'


@given(st.lists(st.tuples(st.sampled_from(["invoice.created", "tenant.created"]), st.text(min_size=1),
                          st.none() | st.text(), st.dictionaries(st.text(), st.integers() | st.text())), max_size=5))
def test_a_batch_makes_the_bytes_build_event_makes(events: list[tuple[str, str, str | None, dict[str, object]]]) -> None:
    at = datetime(2026, 11, 1, 0, 5, 0, 7000, tzinfo=UTC)
    built = build_events(events, created_at=at)
    assert len({e.id for e in built}) == len(events)
    for event, (event_type, partner_id, tenant_id, data) in zip(built, events, strict=True):
        one = build_event(event_type, partner_id=partner_id, data=data, tenant_id=tenant_id, event_id=event.id,
                          created_at=at)
        assert event == one


def test_data_must_be_an_object() -> None:
    with pytest.raises(TypeError):
        encode_data([1, 2])  # type: ignore[arg-type]


def test_ids_are_unique_and_shaped() -> None:
    ids = {build_event("call.completed", partner_id="p", data={}).id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("evt_") and len(i) == 28 for i in ids)


def test_rfc3339_is_utc_milliseconds() -> None:
    from datetime import timedelta, timezone
    local = datetime(2026, 1, 1, 1, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(local) == "2025-12-31T23:00:00.999Z"


def test_registry_has_the_guide_and_the_brief() -> None:
    for name in ["tenant.created", "tenant.suspended", "phone_number.released", "extension.deleted",
                 "invoice.paid", "payment.failed", "call.initiated", "call.failed", "inbound_call.abandoned",
                 "usage.threshold_reached", "usage.cap_reached", "webhook_endpoint.disabled",
                 "e911.unregistered_call", "checkout.session.completed"]:
        assert registry.check(name) == name
    with pytest.raises(registry.UnknownEventType, match="tenant.creatd"):
        registry.check("tenant.creatd")
    assert registry.ALL not in registry.EVENT_TYPES


@given(st.integers(min_value=0, max_value=2**62))
def test_cursor_round_trip(position: int) -> None:
    assert cursor.decode(cursor.encode(position)) == position


@pytest.mark.parametrize("bad", ["", "abc", "MTIz", cursor.encode(5) + "!", "YzE6LTE"])
def test_bad_cursors(bad: str) -> None:
    with pytest.raises(cursor.BadCursor):
        cursor.decode(bad)


def test_the_docs_list_exactly_the_registry() -> None:
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    table = doc[doc.index("| Category |"):doc.index("The partner guide spells")]
    assert set(re.findall(r"[a-z0-9_]+\.[a-z_.]+", table)) == set(registry.EVENT_TYPES)
