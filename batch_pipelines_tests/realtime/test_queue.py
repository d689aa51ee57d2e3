"""The work queue on a real SQLite file: priority order, leases that expire, attempts, dead letters."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from batch_pipelines.engine.models import BatchResult
from batch_pipelines.realtime import Lease, QueueCounts, QueueItem, WorkQueue
from batch_pipelines.realtime.queue import Outcome
from batch_pipelines_tests.realtime.conftest import chat, tickets

pytestmark = pytest.mark.anyio


async def lease_when_ready(queue: WorkQueue, owner: str, limit: int = 10) -> list[Lease]:
    with anyio.fail_after(10):
        while True:
            leases = await queue.lease(owner, limit)
            if leases:
                return leases
            await anyio.sleep(0.02)


async def test_urgent_items_are_leased_first_then_in_insertion_order(queue: WorkQueue) -> None:
    await queue.initialize()
    await queue.enqueue(tickets(3, prefix="normal"))
    await queue.enqueue(
        [QueueItem(chat("urgent", "now"), priority=9), QueueItem(chat("soon", "x"), priority=5)]
    )

    leased = [lease.item_id for lease in await queue.lease("w", 10)]

    assert leased == ["urgent", "soon", "normal0", "normal1", "normal2"]


async def test_enqueueing_the_same_ids_again_adds_nothing(queue: WorkQueue) -> None:
    await queue.initialize()
    assert await queue.enqueue(tickets(4)) == 4
    assert await queue.enqueue(tickets(6)) == 2
    assert (await queue.counts()).pending == 6


async def test_a_held_lease_is_not_delivered_to_anyone_else(queue: WorkQueue) -> None:
    await queue.initialize()
    await queue.enqueue(tickets(2))
    [held] = await queue.lease("first")

    [other] = await queue.lease("second", 10)

    assert (held.item_id, other.item_id) == ("t0", "t1")
    assert await queue.lease("third", 10) == []


async def test_an_expired_lease_is_delivered_again_as_a_new_attempt(tmp_path: Path) -> None:
    queue = WorkQueue(tmp_path / "q.db", visibility_timeout_s=0.05)
    await queue.initialize()
    await queue.enqueue(tickets(1))
    [first] = await queue.lease("dies")

    [again] = await lease_when_ready(queue, "other")

    assert (again.item_id, first.attempt, again.attempt) == ("t0", 1, 2)
    await queue.complete(again, BatchResult("t0", response="late but fine", attempt=again.attempt))
    await queue.complete(first, BatchResult("t0", response="the dead worker's answer"))  # stale: ignored
    [result] = await queue.results()
    assert result.response == "late but fine" and (await queue.counts()).done == 1


async def test_a_lease_that_keeps_expiring_ends_in_the_dead_letter_table(tmp_path: Path) -> None:
    queue = WorkQueue(tmp_path / "q.db", visibility_timeout_s=0.05, max_attempts=2)
    await queue.initialize()
    await queue.enqueue(tickets(1))
    await lease_when_ready(queue, "a")
    await lease_when_ready(queue, "b")
    with anyio.fail_after(10):
        while (await queue.counts()).dead == 0:
            assert await queue.lease("c") == []
            await anyio.sleep(0.02)

    [dead] = await queue.dead_letters()
    assert (dead.item_id, dead.attempts, dead.error_type) == ("t0", 2, "lease_expired")
    [result] = await queue.results()
    assert result.error_type == "lease_expired" and await queue.next_wakeup() is None


async def test_released_leases_come_back_at_once_without_spending_an_attempt(queue: WorkQueue) -> None:
    await queue.initialize()
    await queue.enqueue(tickets(2))
    await queue.release(await queue.lease("stopping", 2))

    again = await queue.lease("next", 2)

    assert [lease.attempt for lease in again] == [1, 1]


async def test_a_delayed_retry_waits_its_turn(queue: WorkQueue) -> None:
    await queue.initialize()
    await queue.enqueue(tickets(1))
    [lease] = await queue.lease("w")
    failure = BatchResult("t0", error="overloaded", error_type="overloaded", retryable=True)

    assert await queue.retry_later(lease, failure, delay_s=30) is False
    assert await queue.lease("w") == []
    wakeup = await queue.next_wakeup()
    assert wakeup is not None and 25 < wakeup <= 30


def test_only_sqlite_locations_are_accepted() -> None:
    with pytest.raises(ValueError, match="only SQLite"):
        WorkQueue("postgresql://db/queue")
    with pytest.raises(ValueError, match="max_attempts"):
        WorkQueue(max_attempts=0)


async def test_one_finish_records_answers_retries_and_dead_letters_together(queue: WorkQueue) -> None:
    await queue.initialize()
    await queue.enqueue(tickets(3))
    answered, flaky, broken = await queue.lease("w", 3)

    states = await queue.finish(
        [
            Outcome(answered, BatchResult("t0", response="billing"), "done"),
            Outcome(
                flaky, BatchResult("t1", error="overloaded", error_type="overloaded", retryable=True), "retry"
            ),
            Outcome(broken, BatchResult("t2", error="bad request", error_type="invalid_request"), "dead"),
        ]
    )

    assert states == ["done", "pending", "dead"]
    assert await queue.counts() == QueueCounts(pending=1, leased=0, done=1, dead=1)
    assert sorted(result.id for result in await queue.results()) == ["t0", "t2"]
