"""The lane's rules (controlplane.webhooks.lane): one first attempt per group at a time, in
position order; the endpoint's bound; the cursor never passes an unrecorded delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.webhooks.lane import Lane
from controlplane.webhooks.models import Job

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def job(position: int, group: str, endpoint: str = "we_a") -> Job:
    return Job(delivery_id=None, endpoint_id=endpoint, event_id=f"evt_{position}", event_type="call.completed",
               body=b"{}", url=f"https://{endpoint}.example/hook", secret_enc=b"sealed", attempts=0,
               max_attempts=8, claimed_at=T0, order_key=group, event_seq=position + 100, position=position)


def positions(taken: list[tuple[Job, float]]) -> list[int]:
    return [j.position for j, _ in taken]


def test_a_groups_next_starts_only_when_its_head_ended_and_groups_go_in_parallel() -> None:
    lane = Lane(per_endpoint=10)
    lane.add([job(1, "t1"), job(2, "t2"), job(3, "t1"), job(4, "t1")], top=4, read_at=0.0)
    first = lane.take(10, {})
    assert positions(first) == [1, 2] and lane.queued == 2
    assert lane.take(10, {}) == []  # t1's head is in flight: 3 waits for it
    lane.ended(first[0][0])
    assert positions(lane.take(10, {})) == [3]
    assert lane.take(10, {}) == []


def test_the_endpoints_bound_counts_its_attempts_elsewhere() -> None:
    lane = Lane(per_endpoint=2)
    lane.add([job(i, f"t{i}") for i in range(1, 6)], top=5, read_at=0.0)
    assert positions(lane.take(10, {"we_a": 1})) == [1]  # one claimed row in flight already
    assert lane.take(10, {"we_a": 1}) == []
    assert dict(lane.busy()) == {"we_a": 1}
    lane.add([job(6, "x", endpoint="we_b")], top=6, read_at=0.0)
    assert positions(lane.take(10, {"we_a": 1})) == [6]  # another endpoint is not held up


def test_the_cursor_stays_below_the_oldest_unrecorded_delivery() -> None:
    lane = Lane(per_endpoint=10)
    assert lane.cursor() == 0
    lane.add([job(5, "a"), job(7, "b"), job(9, "c")], top=12, read_at=0.0)  # 10-12: nothing owed
    assert lane.cursor() == 4
    lane.take(10, {})
    lane.recorded([7, 9])  # out of order
    assert lane.cursor() == 4
    lane.recorded([5])
    assert lane.cursor() == 12


def test_a_spill_takes_an_endpoints_waiting_deliveries_out_and_dropping_keeps_the_cursor() -> None:
    lane = Lane(per_endpoint=1)
    lane.add([job(1, "a"), job(2, "a"), job(3, "b", endpoint="we_b")], top=3, read_at=0.0)
    assert positions(lane.take(10, {})) == [1, 3]
    assert lane.endpoints() == {"we_a": ("https://we_a.example/hook", b"sealed")}
    assert [j.position for j in lane.spill({"we_a"})] == [2] and lane.queued == 0
    lane.recorded([2])
    assert lane.cursor() == 0  # 1 and 3 are still in flight
    lane.add([job(4, "c")], top=4, read_at=0.0)
    lane.drop()
    assert lane.queued == 0 and lane.take(10, {}) == []
    lane.recorded([1, 3])
    assert lane.cursor() == 3  # 4 was dropped unrecorded: the next dispatcher recovers it
