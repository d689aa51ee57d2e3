"""The worker pool's run ends when its queue does: on its own last commit, not on a later poll."""

from __future__ import annotations

import anyio
import pytest

from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import WorkQueue, process_realtime
from batch_pipelines_tests.realtime.conftest import tickets

pytestmark = pytest.mark.anyio


async def test_a_run_ends_on_its_own_last_commit_not_on_the_next_poll(
    queue: WorkQueue, openai_realtime: OpenAIRealtimeProvider
) -> None:
    # Polling once an hour: a run that needed a poll to notice the queue is drained would hit the guard.
    with anyio.fail_after(120):
        summary = await process_realtime(
            tickets(30),
            provider_client=openai_realtime,
            limiter=None,
            queue=queue,
            concurrency=8,
            idle_poll_s=3600,
        )

    assert summary.answered == 30 and summary.queue.open == 0
    assert [result.id for result in await queue.results()] == [f"t{index}" for index in range(30)]
