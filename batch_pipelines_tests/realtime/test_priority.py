"""Urgent items are answered before the backlog that was queued ahead of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import QueueItem, WorkQueue, process_realtime
from batch_pipelines_tests.realtime.conftest import chat, tickets

pytestmark = pytest.mark.anyio


def written_order(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT item_id FROM rt_results ORDER BY written_at").fetchall()
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
