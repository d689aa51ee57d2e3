"""Transient provider failures are retried until answered; permanent ones are dead-lettered unretried."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import WorkQueue, process_realtime
from batch_pipelines_tests.realtime.conftest import chat, chat_calls, sqlite_limiter

pytestmark = pytest.mark.anyio


async def test_transient_faults_are_retried_until_every_item_is_answered(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    flaky = {
        "server": "[[emulator:server_error:2]] ticket one",
        "unavailable": "[[emulator:unavailable:1]] ticket two",
        "overloaded": "[[emulator:overloaded:1]] ticket three",
        "dropped": "[[emulator:drop_connection:1]] ticket four",
        "limited": "[[emulator:rate_limited:1]] ticket five",
        "fine": "ticket six",
    }
    summary = await process_realtime(
        [chat(name, text) for name, text in flaky.items()],
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
        concurrency=6,
        initial_retry_wait_s=0.01,
        max_retry_wait_s=0.05,
    )

    assert summary.answered == 6 and summary.dead_lettered == 0
    results = {result.id: result for result in await queue.results()}
    assert all(result.ok and result.response for result in results.values())
    assert summary.requests_sent == 6 + 6 == chat_calls(emulator)
    assert summary.retries == 6 and summary.rate_limited == 1


async def test_a_permanent_error_is_dead_lettered_after_one_request(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    summary = await process_realtime(
        [chat("bad", "[[emulator:invalid_request]] ticket"), chat("good", "ticket")],
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
    )

    assert (summary.answered, summary.dead_lettered, summary.requests_sent) == (1, 1, 2)
    assert chat_calls(emulator) == 2
    [dead] = await queue.dead_letters()
    assert (dead.item_id, dead.attempts, dead.error_type) == ("bad", 1, "invalid_request")
    assert "invalid_request marker" in dead.error
    results = {result.id: result for result in await queue.results()}
    assert results["bad"].error_type == "invalid_request" and not results["bad"].retryable
    assert results["good"].ok


async def test_a_transient_error_that_never_clears_is_dead_lettered_after_the_queues_attempts(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, tmp_path: Path
) -> None:
    queue = WorkQueue(tmp_path / "q.db", max_attempts=3)
    summary = await process_realtime(
        [chat("broken", "[[emulator:server_error]] ticket")],
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
        max_call_attempts=2,
        initial_retry_wait_s=0.01,
        max_retry_wait_s=0.02,
        retry_delay_s=0.05,
    )

    assert summary.retried_later == 2 and summary.dead_lettered == 1
    assert summary.requests_sent == 3 * 2 == chat_calls(emulator)
    [dead] = await queue.dead_letters()
    assert (dead.attempts, dead.error_type) == (3, "server_error")
    [result] = await queue.results()
    assert result.retryable and result.attempt == 3


async def test_a_request_larger_than_the_whole_token_limit_is_dead_lettered_without_a_call(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue, tmp_path: Path
) -> None:
    limiter = sqlite_limiter(tmp_path / "limiter.db", rpm=600, tpm=1_000)
    summary = await process_realtime(
        [chat("huge", "word " * 2_000), chat("small", "ticket", max_tokens=10)],
        provider_client=openai_realtime,
        limiter=limiter,
        queue=queue,
    )

    assert (summary.answered, summary.dead_lettered) == (1, 1)
    assert chat_calls(emulator) == 1
    [dead] = await queue.dead_letters()
    assert dead.item_id == "huge" and dead.error_type == "request_too_large"


async def test_a_429_saying_the_request_is_too_large_is_never_retried(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    emulator.configure({"rate_limits": {"tpm": 200, "window_s": 1.0}})
    summary = await process_realtime(
        [chat("huge", "word " * 400)], provider_client=openai_realtime, limiter=None, queue=queue
    )

    assert (summary.dead_lettered, summary.requests_sent, summary.rate_limited) == (1, 1, 1)
    [dead] = await queue.dead_letters()
    assert dead.error_type == "request_too_large" and "Request too large" in dead.error
