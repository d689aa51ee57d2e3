"""20,000 items (100,000 in the soak variant) over several partitions through the realtime path (leased
queue, worker pool, tenacity retries, shared SQLite limiter) with 10% seeded transient failures per call
(429, 500, 503, overload, client timeouts, dropped connections) and 1% permanently bad items (invalid
requests, answers cut short so they fail the response schema).

Every item ends with one result (an answer or a dead letter with its reason), and the provider answered
no item more often than the items' own calls explain (counted by the emulator).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import RealtimeSummary, WorkQueue, process_realtime
from batch_pipelines_tests.conftest import TEST_TIME_SCALE
from batch_pipelines_tests.reliability.conftest import SEED
from batch_pipelines_tests.reliability.figures import Figures, record
from batch_pipelines_tests.reliability.pipeline_setup import INVALID_MARKER, SCHEMA, days

TRANSIENT_CALL_FAULTS = {
    "rate_limited": 0.02,  # 429 with retry-after
    "server_error": 0.02,  # 500
    "unavailable": 0.02,  # 503
    "overloaded": 0.02,  # 503 on OpenAI routes (529 on Anthropic ones)
    "drop_connection": 0.01,  # connection closed without an answer
    "slow": 0.01,  # answered after the client's timeout
}
SLOW_ANSWER_S = 100.0  # simulated: 2 s at the test scale, against a 0.5 s client timeout
CLIENT_TIMEOUT_S = 0.5
CONCURRENCY = 48
TRUNCATED_MAX_TOKENS = 3  # too few tokens for the schema's JSON: the answer fails validation


def partition_requests(day: str, count: int, draw: random.Random) -> list[BatchRequest]:
    requests = []
    for index in range(count):
        text = f"Ticket {index} of {day}: my parcel arrived damaged, what now?"
        max_tokens = 40
        roll = draw.random()
        if roll < 0.006:
            text = f"{INVALID_MARKER} {text}"
        elif roll < 0.01:
            max_tokens = TRUNCATED_MAX_TOKENS
        requests.append(
            BatchRequest(
                id=f"{day}-{index:06d}", messages=[{"role": "user", "content": text}], max_tokens=max_tokens
            )
        )
    return requests


async def run_realtime_scenario(
    emulator: EmulatorProcess, tmp_path: Path, *, partitions: int, per_partition: int
) -> None:
    emulator.configure(
        {"faults": {"realtime_error_rates": TRANSIENT_CALL_FAULTS, "slow_response_s": SLOW_ANSWER_S}}
    )
    async with httpx.AsyncClient(timeout=10) as admin:
        (await admin.delete(f"{emulator.url}/_emulator/stats")).raise_for_status()
    draw = random.Random(SEED)
    work = {day: partition_requests(day, per_partition, draw) for day in days(partitions)}
    provider = OpenAIRealtimeProvider(
        "gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-test",
        max_connections=CONCURRENCY,
        timeout_s=CLIENT_TIMEOUT_S,
    )
    limiter = RateLimiter.from_url(
        f"sqlite:///{tmp_path / 'limiter.db'}",
        requests_per_minute=600_000,
        tokens_per_minute=100_000_000,
        key="openai:gpt-4o-mini",
    )
    queues = {day: WorkQueue(tmp_path / "queue.db", name=f"reliability:{day}") for day in work}
    summaries: list[RealtimeSummary] = []
    try:
        for day, requests in work.items():
            summaries.append(
                await process_realtime(
                    requests,
                    provider_client=provider,
                    limiter=limiter,
                    queue=queues[day],
                    concurrency=CONCURRENCY,
                    response_schema=SCHEMA,
                    initial_retry_wait_s=0.01,
                    max_retry_wait_s=0.1,
                    retry_delay_s=0.05,
                )
            )
    finally:
        await provider.aclose()

    results = [result for queue in queues.values() for result in await queue.results()]
    result_ids = [result.id for result in results]
    input_ids = {request.id for requests in work.values() for request in requests}
    answered = [result for result in results if result.ok]
    reasons = Counter(result.error_type or "unknown" for result in results if not result.ok)
    # Every answer the provider gave (and billed) is explained by an item that got it, an item whose answer
    # failed the schema, or a slow answer the client had stopped waiting for; anything beyond is waste.
    explained = len(answered) + reasons["schema_validation"]
    stats = await settled_stats(emulator, explained)
    abandoned = int(stats["faults_injected"].get("slow", 0))
    wasted = int(stats["responses_by_status"].get("200", 0)) - explained - abandoned
    total_usd = sum(summary.cost_usd for summary in summaries)
    figures = record(
        Figures(
            scenario=f"{len(input_ids):,} items, {partitions} partitions",
            path="realtime",
            items_in=len(input_ids),
            with_result=len(answered),
            dead_letter_reasons=reasons,
            lost=len(input_ids - set(result_ids)),
            duplicate_rows=len(result_ids) - len(set(result_ids)),
            wasted_calls=wasted,
            provider_calls=int(stats["requests_by_endpoint"].get("chat.completions", 0)),
            # Billed for retried work: answers of re-delivered items, and answers paid for but abandoned
            # on a client timeout (priced at the mean answer).
            retry_usd=sum(result.cost_usd or 0.0 for result in answered if result.attempt > 1)
            + abandoned * total_usd / max(len(answered), 1),
            total_usd=total_usd,
        )
    )
    assert all(summary.queue.open == 0 for summary in summaries)
    assert figures.lost == 0 and figures.duplicate_rows == 0 and figures.wasted_calls == 0
    marked = sum(INVALID_MARKER in str(r.messages or "") for rs in work.values() for r in rs)
    truncated = sum(r.max_tokens == TRUNCATED_MAX_TOKENS for rs in work.values() for r in rs)
    assert reasons["invalid_request"] == marked
    assert reasons["schema_validation"] == truncated
    assert figures.dead_lettered == marked + truncated  # every transient fault was retried to an answer
    assert sum(summary.retries for summary in summaries) > 0.08 * len(input_ids)


async def settled_stats(emulator: EmulatorProcess, explained: int) -> dict[str, Any]:
    """The emulator's counters once the slow answers the client abandoned have been sent too."""
    with anyio.move_on_after(5 * SLOW_ANSWER_S * TEST_TIME_SCALE):
        while True:
            stats = emulator.stats()
            slow = int(stats["faults_injected"].get("slow", 0))
            if int(stats["responses_by_status"].get("200", 0)) >= explained + slow:
                return stats
            await anyio.sleep(0.1)
    return emulator.stats()


@pytest.mark.anyio
async def test_twenty_thousand_items_through_realtime_faults(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    await run_realtime_scenario(emulator, tmp_path, partitions=4, per_partition=5_000)


@pytest.mark.soak
@pytest.mark.anyio
async def test_soak_hundred_thousand_items_through_realtime_faults(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    with anyio.fail_after(1800):
        await run_realtime_scenario(emulator, tmp_path, partitions=10, per_partition=10_000)
