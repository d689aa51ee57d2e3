"""Urgent items are answered before the backlog that was queued ahead of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import QueueItem, WorkQueue, make_realtime_provider, process_realtime
from batch_pipelines_tests.realtime.conftest import MODEL, chat, tickets

pytestmark = pytest.mark.anyio


def written_order(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT item_id FROM rt_results ORDER BY written_at, rowid").fetchall()
    return [item_id for (item_id,) in rows]


async def test_a_single_worker_answers_urgent_items_first(
    openai_realtime: OpenAIRealtimeProvider, tmp_path: Path
) -> None:
    queue = WorkQueue(tmp_path / "q.db")
    await queue.initialize()
    await queue.enqueue(tickets(6, prefix="backlog"))
    urgent = [QueueItem(chat(f"urgent{index}", f"server down {index}"), priority=10) for index in range(3)]

    await process_realtime(urgent, provider_client=openai_realtime, limiter=None, queue=queue, concurrency=1)

    order = written_order(tmp_path / "q.db")
    assert order[:3] == ["urgent0", "urgent1", "urgent2"]
    assert order[3:] == [f"backlog{index}" for index in range(6)]


# The provider's limit binds: its bucket holds 10 calls, then refills one call per 1/10 s. (The emulator's
# rate-limit window, real seconds, shortened from a minute.) The first 10 calls go at once and may finish
# in any order; the other 50 wait for the budget, where priority must decide.
RPM = 10
WINDOW_S = 1.0
LEVELS = 10


def inverted_pairs(order: list[str], priority: dict[str, int]) -> int:
    """Pairs answered out of priority order: a lower priority written before a higher one."""
    ranks = [priority[item_id] for item_id in order]
    return sum(1 for i, early in enumerate(ranks) for late in ranks[i + 1 :] if early < late)


@pytest.fixture
def rate_limited_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(time_scale=0.02, seed=7, rpm=RPM) as running:
        running.configure({"rate_limits": {"window_s": WINDOW_S}})
        yield running


@pytest.mark.parametrize("run", range(3))
async def test_priority_holds_when_only_the_providers_rate_limit_binds(
    rate_limited_emulator: EmulatorProcess, tmp_path: Path, run: int
) -> None:
    provider = make_realtime_provider(
        "openai", model=MODEL, base_url=rate_limited_emulator.openai_base_url, api_key=f"sk-run{run}"
    )
    items = [
        QueueItem(chat(f"item{index}", f"ticket {index}"), priority=(index * 7 + run) % LEVELS)
        for index in range(60)
    ]
    try:
        summary = await process_realtime(
            items, provider_client=provider, limiter=None, queue=WorkQueue(tmp_path / "q.db"), concurrency=16
        )
    finally:
        await provider.aclose()

    assert summary.answered == len(items)
    assert summary.elapsed_s > 3.0  # the provider's limit did bind: 50 of the 60 waited for its refill
    order = written_order(tmp_path / "q.db")
    pairs = len(items) * (len(items) - 1) // 2
    assert inverted_pairs(order, {item.request.id: item.priority for item in items}) <= 0.02 * pairs
