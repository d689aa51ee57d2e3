"""A provider batch the provider no longer knows (deleted, past its retention, another account) is marked
lost, its unanswered requests come back as retryable failures, and the retry resubmits only those."""

from __future__ import annotations

import logging

import httpx
import pytest

from batch_pipelines import BatchLimits, BatchManager, BatchStatus, make_provider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.providers.base import BatchProvider
from batch_pipelines_tests.engine.conftest import chat, stats, wait_for

pytestmark = pytest.mark.anyio

FOUR_A_BATCH = BatchLimits(max_requests=4, max_bytes=10_000_000)
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


def _provider(emulator: EmulatorProcess, name: str) -> BatchProvider:
    base_url = emulator.openai_base_url if name == "openai" else emulator.anthropic_base_url
    return make_provider(name, model=MODELS[name], base_url=base_url, api_key="sk-test", limits=FOUR_A_BATCH)


def _requests(count: int) -> list:  # type: ignore[type-arg]
    return [chat(f"r{i}", f"Summarise ticket {i}") for i in range(count)]


def _sent_ids(emulator: EmulatorProcess, batch_id: str) -> list[str]:
    """The custom_ids of one OpenAI batch's input file, read back from the emulator."""
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client(base_url=emulator.openai_base_url, headers=headers, timeout=10) as client:
        file_id = client.get(f"/batches/{batch_id}").raise_for_status().json()["input_file_id"]
        content = client.get(f"/files/{file_id}/content").raise_for_status().text
    return [line.split('"custom_id":"', 1)[1].split('"', 1)[0] for line in content.splitlines()]


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
async def test_a_batch_forgotten_while_running_is_lost_and_only_its_requests_are_resubmitted(
    emulator: EmulatorProcess, provider_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager = BatchManager(_provider(emulator, provider_name))
    job = await manager.submit(_requests(8), job_id="tickets.lost")
    first, second = job.provider_batch_ids
    emulator.forget_batch(second)  # before any refresh saw it end

    with caplog.at_level(logging.WARNING, logger="batch_pipelines.engine"):
        ended = await wait_for(manager, job.id)
    [line] = [r.getMessage() for r in caplog.records if "is lost" in r.getMessage()]
    assert f"provider batch {second} (attempt 1, chunk 1, 4 requests) is lost" in line
    assert f"{provider_name} no longer knows it" in line and "resubmitted as a new attempt" in line
    assert ended.status is BatchStatus.COMPLETED
    assert "lost: the provider no longer knows this batch" in ended.detail

    results = {r.id: r for r in await manager.get_results(job.id)}
    assert [rid for rid, r in results.items() if r.ok] == ["r0", "r1", "r2", "r3"]
    lost = [results[f"r{i}"] for i in range(4, 8)]
    assert {(r.error_type, r.retryable, r.provider_batch_id) for r in lost} == {("batch_lost", True, second)}
    answers_before = {rid: results[rid].response for rid in ("r0", "r1", "r2", "r3")}

    retried = await manager.retry_failed(job.id)
    assert retried.attempt == 2
    [third] = [b for b in retried.provider_batch_ids if b not in (first, second)]
    done = await wait_for(manager, job.id)
    assert done.status is BatchStatus.COMPLETED and done.progress.completed == 8
    after = {r.id: r for r in await manager.get_results(job.id)}
    assert all(r.ok for r in after.values())
    assert {rid: r.attempt for rid, r in after.items()} == {f"r{i}": 1 if i < 4 else 2 for i in range(8)}
    assert {rid: after[rid].response for rid in answers_before} == answers_before
    assert stats_created(emulator, provider_name) == 3
    if provider_name == "openai":
        assert _sent_ids(emulator, third) == ["r4", "r5", "r6", "r7"]
    await manager.provider.aclose()


async def test_a_batch_whose_results_were_deleted_before_collection_is_lost_and_resubmitted(
    emulator: EmulatorProcess,
) -> None:
    manager = BatchManager(_provider(emulator, "openai"))
    job = await manager.submit(_requests(8), job_id="tickets.gone")
    ended = await wait_for(manager, job.id)
    assert ended.status is BatchStatus.COMPLETED and ended.progress.completed == 8  # provider's counts
    first, second = job.provider_batch_ids
    emulator.forget_batch(first)  # retention passed before anyone collected it

    results = {r.id: r for r in await manager.get_results(job.id)}
    assert {rid for rid, r in results.items() if r.error_type == "batch_lost" and r.retryable} == {
        "r0",
        "r1",
        "r2",
        "r3",
    }
    assert all(results[f"r{i}"].ok for i in range(4, 8))

    retried = await manager.retry_failed(job.id)
    [third] = [b for b in retried.provider_batch_ids if b not in (first, second)]
    assert _sent_ids(emulator, third) == ["r0", "r1", "r2", "r3"]
    await wait_for(manager, job.id)
    assert all(r.ok for r in await manager.get_results(job.id))
    await manager.provider.aclose()


def stats_created(emulator: EmulatorProcess, provider_name: str) -> int:
    with httpx.Client(base_url=f"{emulator.url}/_emulator", timeout=10) as admin:
        return int(stats(admin)["batches_created"][provider_name])
