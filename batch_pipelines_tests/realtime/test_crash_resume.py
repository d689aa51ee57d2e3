"""A worker process killed mid-run (SIGKILL) loses nothing: a resumed run answers every item once, and
items whose results were written before the crash are never sent again."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import WorkQueue, process_realtime
from batch_pipelines_tests.realtime.conftest import chat_calls, reset_stats, sqlite_limiter, tickets
from batch_pipelines_tests.realtime.worker_process import CONCURRENCY

pytestmark = pytest.mark.anyio

ITEMS = 40
VISIBILITY_S = 1.0


async def wait_until_done(queue: WorkQueue, at_least: int, process: Process) -> None:
    with anyio.fail_after(30):
        while (await queue.counts()).done < at_least:
            assert process.returncode is None, "the worker exited before it was killed"
            await anyio.sleep(0.02)


async def settled_chat_calls(emulator: EmulatorProcess) -> int:
    """The emulator's chat call count once requests still travelling from the dead worker have landed."""
    previous = -1
    with anyio.fail_after(10):
        while (current := chat_calls(emulator)) != previous:
            previous = current
            await anyio.sleep(0.3)
    return current


async def test_a_killed_worker_is_resumed_without_losing_or_repaying_items(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    # Every answer takes ~0.2 s (the emulator's "slow" fault at time scale 0.02), so work is in flight.
    emulator.configure({"faults": {"realtime_error_rates": {"slow": 1.0}, "slow_response_s": 10.0}})
    queue = WorkQueue(tmp_path / "work.db", name="crash", visibility_timeout_s=VISIBILITY_S)
    await queue.initialize()
    await queue.enqueue(tickets(ITEMS, max_tokens=10))
    worker = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "batch_pipelines_tests.realtime.worker_process",
            emulator.openai_base_url,
            str(tmp_path / "work.db"),
            str(tmp_path / "limiter.db"),
            str(VISIBILITY_S),
        ],
        stdout=None,
        stderr=None,
    )
    try:
        await wait_until_done(queue, 8, worker)
    finally:
        worker.kill()  # SIGKILL: no cleanup, leases stay held
        await worker.wait()

    counts = await queue.counts()
    answered_before_crash = counts.done
    assert 8 <= answered_before_crash < ITEMS and counts.leased > 0  # killed with leases held
    calls_before_crash = await settled_chat_calls(emulator)
    assert 0 <= calls_before_crash - answered_before_crash <= CONCURRENCY  # only in-flight calls were lost
    reset_stats(emulator)

    provider = OpenAIRealtimeProvider("gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-resume")
    resumed = await process_realtime(
        None,
        provider_client=provider,
        limiter=sqlite_limiter(tmp_path / "limiter.db", rpm=600, tpm=1_000_000),
        queue=queue,
        concurrency=CONCURRENCY,
    )
    await provider.aclose()

    assert resumed.queue.open == 0 and resumed.queue.dead == 0
    assert resumed.answered == ITEMS - answered_before_crash
    assert chat_calls(emulator) == ITEMS - answered_before_crash  # nothing already answered was re-sent
    results = await queue.results()
    assert sorted(result.id for result in results) == sorted(request.id for request in tickets(ITEMS))
    assert all(result.ok for result in results)
    redelivered = [result for result in results if result.attempt > 1]
    assert 0 < len(redelivered) <= CONCURRENCY  # the dead worker's leases came back
