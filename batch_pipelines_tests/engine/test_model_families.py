"""Today's models through the engine and the realtime clients against the emulator: the parameters each
OpenAI family takes, Anthropic prompt caching priced at its multipliers, and the Anthropic wire details
(results_url, Content-Length, anthropic-version)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from batch_pipelines import AnthropicProvider, BatchManager, BatchStatus, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.providers.anthropic_realtime import AnthropicRealtimeProvider
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.providers.realtime import RealtimeCallError
from batch_pipelines_tests.engine.conftest import chat, patch_config, stats, wait_for

pytestmark = pytest.mark.anyio

# About 1,600 tokens every request starts with, marked for Anthropic's cache.
HANDBOOK = " ".join(
    f"Rule {n}: route tickets about topic {n} to queue {n % 7} unless urgent." for n in range(95)
)
CACHED_SYSTEM = [{"type": "text", "text": HANDBOOK, "cache_control": {"type": "ephemeral"}}]
# claude-haiku-4-5 (USD per 1M tokens): input, output; cache reads 0.1x input, writes 1.25x; batch half.
INPUT, OUTPUT, READ, WRITE, BATCH = 1.00, 5.00, 0.1, 1.25, 0.5


@pytest.fixture
async def gpt5(emulator: EmulatorProcess) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(model="gpt-5-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    yield provider
    await provider.aclose()


async def test_a_gpt_5_mini_batch_completes_with_every_line_succeeded(gpt5: OpenAIProvider) -> None:
    manager = BatchManager(gpt5)
    requests = [chat(f"r{i}", f"Classify ticket {i}", max_tokens=16, temperature=1) for i in range(8)]
    requests.append(
        chat("effort", "Classify carefully", params={"reasoning_effort": "high", "max_tokens": 16})
    )
    job = await manager.submit(requests)
    done = await wait_for(manager, job.id)
    assert done.status is BatchStatus.COMPLETED
    results = await manager.get_results(job.id)
    assert len(results) == 9 and all(r.ok and r.output_tokens > 0 for r in results), results


async def test_a_temperature_gpt_5_refuses_is_named_before_anything_is_uploaded(
    gpt5: OpenAIProvider, admin: httpx.Client
) -> None:
    manager = BatchManager(gpt5)
    with pytest.raises(ValueError, match=r"'cold'.*gpt-5-mini.*temperature"):
        await manager.submit([chat("warm", "Hello", temperature=1), chat("cold", "Hello", temperature=0.2)])
    assert stats(admin)["requests_by_endpoint"].get("files.create", 0) == 0


async def test_realtime_calls_follow_each_family_s_rules(emulator: EmulatorProcess) -> None:
    reasoning = OpenAIRealtimeProvider("gpt-5-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    older = OpenAIRealtimeProvider("gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    try:
        answer = await reasoning.call(chat("a", "Classify this", max_tokens=16), None)
        assert answer.result.ok and 0 < answer.result.output_tokens <= 16
        with pytest.raises(ValueError, match="top_p"):
            await reasoning.call(chat("b", "Classify this", params={"top_p": 0.3}), None)
        sampled = await older.call(chat("c", "Classify this", max_tokens=16, temperature=0.2), None)
        assert sampled.result.ok
    finally:
        await reasoning.aclose()
        await older.aclose()


async def test_a_429_for_quota_is_permanent_and_says_what_to_do(emulator: EmulatorProcess) -> None:
    provider = OpenAIRealtimeProvider("gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    try:
        with pytest.raises(RealtimeCallError) as refused:
            await provider.call(chat("q", "Hello [[emulator:insufficient_quota]]"), None)
    finally:
        await provider.aclose()
    assert refused.value.status_code == 429
    assert refused.value.error_type == "billing" and refused.value.retryable is False
    assert "exceeded your current quota" in str(refused.value) and "add credit" in str(refused.value)


async def _anthropic_job(emulator: EmulatorProcess, system: Any, **provider: Any) -> list[Any]:
    client = AnthropicProvider(
        model="claude-haiku-4-5", base_url=emulator.anthropic_base_url, api_key="sk-ant-test", **provider
    )
    try:
        manager = BatchManager(client)
        requests = [
            chat(f"t{i}", f"Ticket {i}: my parcel is late", params={"system": system}) for i in range(6)
        ]
        job = await manager.submit(requests)
        assert (await wait_for(manager, job.id)).status is BatchStatus.COMPLETED
        results = await manager.get_results(job.id)  # collected first: the job's cost comes from them
        return [await manager.get_job(job.id), results]
    finally:
        await client.aclose()


async def test_anthropic_cache_writes_and_reads_are_priced_at_their_multipliers(
    emulator: EmulatorProcess, admin: httpx.Client
) -> None:
    cached_job, cached = await _anthropic_job(emulator, CACHED_SYSTEM)
    plain_job, plain = await _anthropic_job(emulator, HANDBOOK)  # no cache_control: nothing cached

    writes = [r.cache_write_input_tokens for r in cached]
    reads = [r.cached_input_tokens for r in cached]
    assert sorted(writes, reverse=True)[1:] == [0] * 5 and max(writes) >= 1024  # one request writes
    assert reads.count(0) == 1 and len(set(reads) - {0}) == 1 and max(reads) == max(writes)
    assert sum(r.input_tokens for r in cached) == sum(r.input_tokens for r in plain)
    assert all(r.cached_input_tokens == r.cache_write_input_tokens == 0 for r in plain)

    by_hand = (
        BATCH
        / 1e6
        * sum(
            (r.input_tokens - r.cached_input_tokens - r.cache_write_input_tokens) * INPUT
            + r.cached_input_tokens * INPUT * READ
            + r.cache_write_input_tokens * INPUT * WRITE
            + r.output_tokens * OUTPUT
            for r in cached
        )
    )
    assert cached_job.cost.actual_usd == pytest.approx(by_hand, rel=0.01)
    assert sum(r.cost_usd for r in cached) == pytest.approx(by_hand, rel=0.01)
    assert cached_job.cost.actual_usd < plain_job.cost.actual_usd
    assert cached_job.cost.cache_saved_usd == pytest.approx(
        plain_job.cost.actual_usd - cached_job.cost.actual_usd, rel=0.01
    )

    counters = stats(admin)["requests_by_endpoint"]
    # The results came from each batch's results_url, not from a URL the client built.
    assert counters.get("message_batches.results_download", 0) >= 2
    assert counters.get("message_batches.results", 0) == 0


async def test_the_batch_create_body_has_a_content_length(
    emulator: EmulatorProcess, admin: httpx.Client
) -> None:
    await _anthropic_job(emulator, "Be brief.")
    counters = stats(admin)
    assert counters["requests_by_endpoint"]["message_batches.create"] == 1
    assert counters["message_batches_created_without_content_length"] == 0


async def test_the_anthropic_version_is_configurable(
    emulator: EmulatorProcess, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _anthropic_job(emulator, "Be brief.", api_version="2025-05-01")
    monkeypatch.setenv("BATCH_PIPELINES_ANTHROPIC_VERSION", "2024-10-22")
    realtime = AnthropicRealtimeProvider(
        "claude-haiku-4-5", base_url=emulator.anthropic_base_url, api_key="sk-ant-test"
    )
    try:
        assert (await realtime.call(chat("v", "Hello"), None)).result.ok
    finally:
        await realtime.aclose()
    versions = stats(admin)["anthropic_versions"]
    assert versions.get("2025-05-01", 0) >= 3  # create, polls, results
    assert versions.get("2024-10-22") == 1
    assert "2023-06-01" not in versions


async def test_openai_cached_tokens_reach_the_job_cost(gpt5: OpenAIProvider, admin: httpx.Client) -> None:
    patch_config(admin, {"model": {"prompt_cache_min_tokens": 1024}})
    manager = BatchManager(gpt5)
    system = {"system": HANDBOOK}
    job = await manager.submit([chat(f"c{i}", f"Ticket {i}", max_tokens=16, **system) for i in range(4)])
    done = await wait_for(manager, job.id)
    results = await manager.get_results(job.id)
    cached = sum(r.cached_input_tokens for r in results)
    assert cached >= 3 * 1024 and done.cost.cached_input_tokens == cached
    assert done.cost.cache_saved_usd == pytest.approx(cached * 0.25 * 0.9 * BATCH / 1e6, rel=0.01)
