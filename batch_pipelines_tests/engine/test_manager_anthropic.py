"""BatchManager against the emulator's Anthropic Message Batches API."""

from __future__ import annotations

import httpx
import pytest

from batch_pipelines import AnthropicProvider, BatchManager, BatchStatus
from batch_pipelines_tests.engine.conftest import chat, patch_config, queue_scenario, stats, wait_for

pytestmark = pytest.mark.anyio


async def test_results_errors_and_cost(anthropic_provider: AnthropicProvider) -> None:
    manager = BatchManager(anthropic_provider)
    requests = [chat(f"r{i}", f"Summarise ticket {i}", system="Be brief") for i in range(5)]
    requests.append(chat("bad", "Summarise [[emulator:invalid_request]]"))
    requests.append(chat("flaky", "Summarise [[emulator:server_error]]"))
    job = await manager.submit(requests)
    done = await wait_for(manager, job.id)
    assert done.status == BatchStatus.COMPLETED
    by_id = {r.id: r for r in await manager.get_results(job.id)}
    assert list(by_id) == [r.id for r in requests]
    assert all(by_id[f"r{i}"].ok and by_id[f"r{i}"].response for i in range(5))
    assert (by_id["bad"].error_type, by_id["bad"].retryable) == ("invalid_request", False)
    assert by_id["flaky"].retryable and by_id["flaky"].error_type == "server_error"
    job = await manager.get_job(job.id)
    assert job.cost.actual_usd and job.cost.saved_usd == pytest.approx(job.cost.actual_usd)
    assert (job.progress.completed, job.progress.failed) == (5, 2)


async def test_expired_requests_are_retried_and_successes_kept(
    anthropic_provider: AnthropicProvider, admin: httpx.Client
) -> None:
    queue_scenario(admin, "expire_half", "anthropic")
    manager = BatchManager(anthropic_provider)
    job = await manager.submit([chat(f"r{i}", f"Classify {i}") for i in range(10)])
    assert (await wait_for(manager, job.id)).status == BatchStatus.COMPLETED
    first = await manager.get_results(job.id)
    expired = {r.id for r in first if not r.ok}
    assert expired and {r.error_type for r in first if not r.ok} == {"batch_expired"}
    await manager.retry_failed(job.id)
    assert (await wait_for(manager, job.id)).status == BatchStatus.COMPLETED
    final = await manager.get_results(job.id)
    assert all(r.ok for r in final)
    assert {r.id for r in final if r.attempt == 2} == expired
    assert stats(admin)["batches_created"]["anthropic"] == 2


async def test_cancel(anthropic_provider: AnthropicProvider, admin: httpx.Client) -> None:
    patch_config(
        admin, {"lifecycle": {"in_progress_min_s": 150, "in_progress_max_s": 150, "cancelling_s": 50}}
    )
    manager = BatchManager(anthropic_provider)
    job = await manager.submit([chat(f"r{i}", f"Summarise {i}") for i in range(10)])
    cancelled = await manager.cancel(job.id)
    assert (cancelled.status, cancelled.detail) == (BatchStatus.CANCELLED, "cancelling")
    await wait_for(manager, job.id, condition=lambda j: j.detail == "cancelled")
    results = await manager.get_results(job.id)
    assert len(results) == 10
    assert {(r.error_type, r.retryable) for r in results if not r.ok} == {("cancelled", True)}


async def test_whole_batch_invalid_fails_the_job_permanently(
    anthropic_provider: AnthropicProvider, admin: httpx.Client
) -> None:
    queue_scenario(admin, "fail_validation", "anthropic")
    manager = BatchManager(anthropic_provider)
    job = await manager.submit([chat(f"r{i}", "Summarise") for i in range(3)])
    assert (await wait_for(manager, job.id)).status == BatchStatus.FAILED
    assert {(r.error_type, r.retryable) for r in await manager.get_results(job.id)} == {
        ("invalid_request", False)
    }
    again = await manager.retry_failed(job.id)
    assert again.attempt == 1 and stats(admin)["batches_created"]["anthropic"] == 1


async def test_batch_refused_at_create_fails_its_requests_with_the_reason(
    anthropic_provider: AnthropicProvider, admin: httpx.Client
) -> None:
    patch_config(admin, {"limits": {"anthropic_max_requests": 2}})  # the client still believes 100,000
    manager = BatchManager(anthropic_provider)
    job = await manager.submit([chat(f"r{i}", "Summarise") for i in range(3)])
    assert (job.status, job.detail) == (BatchStatus.FAILED, "rejected: invalid_request")
    results = await manager.get_results(job.id)
    assert {(r.error_type, r.retryable) for r in results} == {("invalid_request", False)}
    assert "at most 2 requests" in (results[0].error or "")


async def test_structured_output_is_requested_parsed_and_validated(
    anthropic_provider: AnthropicProvider,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["billing", "bug"]},
            "urgency": {"type": "integer"},
        },
        "required": ["category", "urgency"],
    }
    manager = BatchManager(anthropic_provider)
    job = await manager.submit(
        [chat(f"t{i}", f"Triage ticket {i}") for i in range(3)], response_schema=schema
    )
    await wait_for(manager, job.id)
    results = await manager.get_results(job.id)
    assert [r.error for r in results] == [None, None, None]
    assert all(isinstance(r.parsed, dict) and r.parsed["category"] in {"billing", "bug"} for r in results)
