"""BatchManager against the emulator's OpenAI Batch API, with failures switched on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx
import pytest

from batch_pipelines import BatchManager, BatchRequest, BatchResult, BatchStatus, BatchStore, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.errors import DuplicateRequestIdError, JobNotFinishedError
from batch_pipelines.engine.limits import BatchLimits, estimate_tokens
from batch_pipelines_tests.engine.conftest import chat, patch_config, queue_scenario, stats, wait_for

pytestmark = pytest.mark.anyio


async def test_readme_example_runs_as_written(emulator: EmulatorProcess, tmp_path: Path) -> None:
    provider = OpenAIProvider(model="gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    store = BatchStore(tmp_path / "batches.db")
    await store.initialize()
    manager = BatchManager(provider=provider, store=store)
    job = await manager.submit(
        [
            BatchRequest(
                id="req-1", messages=[{"role": "user", "content": "Summarize: AI is changing work"}]
            ),
            BatchRequest(
                id="req-2", messages=[{"role": "user", "content": "Summarize: batch APIs cost less"}]
            ),
        ]
    )
    status = await manager.get_status(job.id)
    assert status in (BatchStatus.PENDING, BatchStatus.PROCESSING, BatchStatus.COMPLETED)
    finished = await wait_for(manager, job.id)
    match finished.status:
        case BatchStatus.COMPLETED:
            results = await manager.get_results(job.id)
        case _:
            raise AssertionError(f"unexpected {finished}")
    assert [r.id for r in results] == ["req-1", "req-2"]
    assert all(r.error is None and r.response for r in results)
    assert finished.cost.estimated_usd and finished.cost.actual_usd and finished.cost.saved_usd
    assert finished.cost.realtime_usd == pytest.approx(2 * finished.cost.actual_usd)
    assert finished.progress.percent == 100.0

    second = await manager.submit([BatchRequest(id="req-3", messages=[{"role": "user", "content": "Hi"}])])
    await manager.cancel(second.id)
    assert await manager.get_status(second.id) == BatchStatus.CANCELLED
    await provider.aclose()


async def test_one_job_spans_several_provider_batches(
    emulator: EmulatorProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    provider = OpenAIProvider(
        "gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-test",
        limits=BatchLimits(max_requests=3, max_bytes=10**8),
    )
    manager = BatchManager(provider, BatchStore(tmp_path / "b.db"))
    job = await manager.submit([chat(f"r{i}", f"Summarise ticket {i}") for i in range(7)])
    assert len(job.provider_batch_ids) == 3
    assert stats(admin)["batches_created"]["openai"] == 3
    assert (await wait_for(manager, job.id)).status == BatchStatus.COMPLETED
    results = await manager.get_results(job.id)
    assert [r.id for r in results] == [f"r{i}" for i in range(7)]
    assert len({r.provider_batch_id for r in results}) == 3 and all(r.ok for r in results)
    await provider.aclose()


async def test_results_streamed_while_collected_equal_the_stored_ones(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """The first read of a job yields each batch's results as they are collected; every later read
    comes from the store. Both give the same results, in submission order, whatever order the provider
    answered in."""
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    provider = OpenAIProvider(
        "gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-test",
        limits=BatchLimits(max_requests=5, max_bytes=10**8),
    )
    manager = BatchManager(provider, BatchStore(tmp_path / "b.db"))
    requests = [chat(f"r{i:02d}", f"Classify ticket {i} " + "detail " * i) for i in range(13)]
    requests[3] = chat("r03", "Classify [[emulator:invalid_request]]")
    requests[8] = chat("r08", "Classify [[emulator:server_error:1]]")
    job = await manager.submit(requests, response_schema=schema)
    assert len(job.provider_batch_ids) == 3
    await wait_for(manager, job.id)
    order = _output_order(emulator, job.provider_batch_ids[0])
    assert order != sorted(order), "the emulator should return lines out of order"

    streamed = await manager.get_results(job.id)
    stored = await manager.get_results(job.id)
    assert streamed == stored
    assert [r.id for r in streamed] == [r.id for r in requests]
    assert (streamed[3].error_type, streamed[8].error_type) == ("invalid_request", "server_error")
    assert all(isinstance(r.parsed, dict) for r in streamed if r.ok) and sum(r.ok for r in streamed) == 11
    assert (await manager.get_job(job.id)).status == BatchStatus.COMPLETED
    await provider.aclose()


async def test_byte_limit_splits_even_when_the_count_allows(
    emulator: EmulatorProcess, admin: httpx.Client
) -> None:
    requests = [chat(f"r{i}", "long text " * 50) for i in range(6)]
    line_bytes = len(OpenAIProvider("gpt-4o-mini", api_key="x").render_line(requests[0], None))
    provider = OpenAIProvider(
        "gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-test",
        limits=BatchLimits(max_requests=1000, max_bytes=2 * line_bytes),
    )
    manager = BatchManager(provider)
    job = await manager.submit(requests)
    assert len(job.provider_batch_ids) == 3
    assert stats(admin)["batches_created"]["openai"] == 3
    assert all(r.ok for r in await _results_when_done(manager, job.id))
    await provider.aclose()


async def test_enqueued_token_pool_holds_batches_back_instead_of_failing(
    emulator: EmulatorProcess, admin: httpx.Client
) -> None:
    requests = [chat(f"r{i}", "word " * 80) for i in range(6)]
    pool = estimate_tokens(requests[0]) * 2
    patch_config(admin, {"limits": {"openai_enqueued_tokens": pool}})
    provider = OpenAIProvider(
        "gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-test",
        limits=BatchLimits(max_requests=1000, max_bytes=10**8, max_enqueued_tokens=pool),
    )
    manager = BatchManager(provider)
    job = await manager.submit(requests)
    assert len(job.provider_batch_ids) == 1  # two more chunks wait for the pool
    assert "waiting for the enqueued-token budget" in job.detail
    results = await _results_when_done(manager, job.id)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert stats(admin)["batches_created"]["openai"] == 3
    await provider.aclose()


async def test_expired_batch_keeps_finished_rows_and_retry_resubmits_only_the_rest(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    queue_scenario(admin, "expire_half", "openai")
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat(f"r{i}", f"Classify {i}") for i in range(10)])
    done = await wait_for(manager, job.id)
    assert done.status == BatchStatus.COMPLETED and "expired" in done.detail
    first = {r.id: r for r in await manager.get_results(job.id)}
    kept = {rid for rid, r in first.items() if r.ok}
    expired = {rid for rid, r in first.items() if not r.ok}
    assert kept and expired and len(first) == 10
    assert {(r.error_type, r.retryable) for r in first.values() if not r.ok} == {("batch_expired", True)}

    retried = await manager.retry_failed(job.id)
    assert retried.attempt == 2 and len(retried.provider_batch_ids) == 2
    second_batch = retried.provider_batch_ids[-1]
    assert _batch_total(admin, openai_provider, second_batch) == len(expired)
    assert (await wait_for(manager, job.id)).status == BatchStatus.COMPLETED
    final = {r.id: r for r in await manager.get_results(job.id)}
    assert all(r.ok for r in final.values())
    assert {rid for rid, r in final.items() if r.attempt == 1} == kept
    assert {rid for rid, r in final.items() if r.provider_batch_id == second_batch} == expired
    assert {rid: final[rid].response for rid in kept} == {rid: first[rid].response for rid in kept}


async def test_token_limit_exceeded_after_create_fails_the_job_retryably(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    queue_scenario(admin, "token_limit_exceeded", "openai")
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat(f"r{i}", "Summarise") for i in range(4)])
    failed = await wait_for(manager, job.id)
    assert failed.status == BatchStatus.FAILED and "token_limit_exceeded" in failed.detail
    results = await manager.get_results(job.id)
    assert {(r.error_type, r.retryable) for r in results} == {("token_limit_exceeded", True)}
    assert "Enqueued token limit" in (results[0].error or "")
    await manager.retry_failed(job.id)
    assert (await wait_for(manager, job.id)).status == BatchStatus.COMPLETED
    assert all(r.ok for r in await manager.get_results(job.id))


async def test_failed_validation_names_the_bad_line(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    queue_scenario(admin, "fail_validation", "openai")
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat(f"r{i}", "Summarise") for i in range(3)])
    assert (await wait_for(manager, job.id)).status == BatchStatus.FAILED
    by_id = {r.id: r for r in await manager.get_results(job.id)}
    assert (by_id["r0"].error_type, by_id["r0"].retryable) == ("invalid_request", False)
    assert "Line 1" in (by_id["r0"].error or "")
    assert {(by_id[k].error_type, by_id[k].retryable) for k in ("r1", "r2")} == {("batch_failed", True)}


async def test_permanent_errors_are_never_resubmitted(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    manager = BatchManager(openai_provider)
    requests = [chat(f"ok{i}", f"Summarise {i}") for i in range(3)]
    requests += [chat("bad", "Summarise [[emulator:invalid_request]]")]
    requests += [chat("flaky", "Summarise [[emulator:server_error:1]]")]
    job = await manager.submit(requests)
    assert (await wait_for(manager, job.id)).status == BatchStatus.COMPLETED
    first = {r.id: r for r in await manager.get_results(job.id)}
    assert (first["bad"].error_type, first["bad"].retryable) == ("invalid_request", False)
    assert first["flaky"].retryable and first["flaky"].error_type == "server_error"

    retried = await manager.retry_failed(job.id)
    assert _batch_total(admin, openai_provider, retried.provider_batch_ids[-1]) == 1
    await wait_for(manager, job.id)
    final = {r.id: r for r in await manager.get_results(job.id)}
    assert final["flaky"].ok and final["flaky"].attempt == 2
    assert final["bad"].error_type == "invalid_request" and final["bad"].attempt == 1

    created = stats(admin)["batches_created"]["openai"]
    again = await manager.retry_failed(job.id)  # only the permanent failure is left
    assert again.attempt == 2 and stats(admin)["batches_created"]["openai"] == created


async def test_results_join_on_custom_id_despite_shuffled_output(
    openai_provider: OpenAIProvider, emulator: EmulatorProcess
) -> None:
    manager = BatchManager(openai_provider)
    requests = [chat(f"r{i:02d}", f"Tell me about item {i} " + "detail " * i) for i in range(12)]
    forward = await manager.submit(requests)
    backward = await manager.submit(list(reversed(requests)))
    await wait_for(manager, forward.id)
    await wait_for(manager, backward.id)
    order = _output_order(emulator, forward.provider_batch_ids[0])
    assert order != sorted(order), "the emulator should return lines out of order"
    one = {r.id: (r.response, r.input_tokens) for r in await manager.get_results(forward.id)}
    two = {r.id: (r.response, r.input_tokens) for r in await manager.get_results(backward.id)}
    assert one == two
    assert len({tokens for _, tokens in one.values()}) == 12  # each request kept its own usage


async def test_cancel_answers_cancelled_at_once_and_keeps_what_finished(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    patch_config(
        admin, {"lifecycle": {"in_progress_min_s": 150, "in_progress_max_s": 150, "cancelling_s": 50}}
    )
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat(f"r{i}", f"Summarise {i}") for i in range(20)])
    await wait_for(manager, job.id, until=(BatchStatus.PROCESSING,))
    cancelled = await manager.cancel(job.id)
    assert cancelled.status == BatchStatus.CANCELLED and cancelled.detail == "cancelling"
    assert await manager.get_status(job.id) == BatchStatus.CANCELLED
    with pytest.raises(JobNotFinishedError):
        await manager.retry_failed(job.id)
    ended = await wait_for(manager, job.id, condition=lambda j: j.detail == "cancelled")
    assert ended.status == BatchStatus.CANCELLED
    results = await manager.get_results(job.id)
    assert len(results) == 20
    assert {r.error_type for r in results if not r.ok} == {"cancelled"}
    assert all(r.retryable for r in results if not r.ok)


async def test_duplicate_ids_and_repeated_job_id(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    manager = BatchManager(openai_provider)
    with pytest.raises(DuplicateRequestIdError, match=r"'a', 'b'$"):
        await manager.submit([chat("a", "x"), chat("b", "y"), chat("a", "z"), chat("b", "w"), chat("c", "v")])
    assert stats(admin)["batches_created"]["openai"] == 0
    first = await manager.submit([chat("a", "x")], job_id="nightly-2026-11-22", metadata={"partition": "p1"})
    again = await manager.submit([chat("a", "x")], job_id="nightly-2026-11-22", metadata={"partition": "p1"})
    assert again.provider_batch_ids == first.provider_batch_ids
    assert stats(admin)["batches_created"]["openai"] == 1
    assert again.metadata == {"partition": "p1"}
    await wait_for(manager, first.id)
    assert len(await manager.get_results(first.id)) == len(await manager.get_results(first.id)) == 1


async def test_ids_repeated_pages_apart_are_all_named_and_nothing_is_sent(
    openai_provider: OpenAIProvider, admin: httpx.Client, tmp_path: Path
) -> None:
    """Repeats are found by the store, not a set in memory: across pages of stored requests too."""
    ids = [f"r{index}" for index in range(4500)]
    ids[2600] = "r5"  # the second page repeats the first
    ids[4400] = "r4300"  # the third page repeats itself
    store = BatchStore(tmp_path / "batches.db")
    manager = BatchManager(openai_provider, store)
    with pytest.raises(DuplicateRequestIdError) as raised:
        await manager.submit([chat(item_id, "x") for item_id in ids], job_id="repeats")
    assert raised.value.duplicates == ["r4300", "r5"]
    assert stats(admin)["batches_created"]["openai"] == 0
    # The refused job is not recorded as prepared: the same id with unique requests goes through.
    job = await manager.submit([chat(f"u{index}", "x") for index in range(10)], job_id="repeats")
    assert job.progress.total == 10
    await store.close()


async def test_structured_output_is_parsed_and_validated(openai_provider: OpenAIProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        "required": ["label", "score"],
    }
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat("t1", "Classify: refund please")], response_schema=schema)
    [result] = await _results_when_done(manager, job.id)
    assert result.ok and isinstance(result.parsed, dict)
    assert isinstance(result.parsed["label"], str) and isinstance(result.parsed["score"], int | float)
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        await manager.submit([chat("t2", "x")], response_schema={"type": "no-such-type"})


async def test_embeddings(emulator: EmulatorProcess) -> None:
    provider = OpenAIProvider("text-embedding-3-small", base_url=emulator.openai_base_url, api_key="sk-test")
    manager = BatchManager(provider)
    job = await manager.submit([BatchRequest(id=f"e{i}", input=f"document {i}") for i in range(3)])
    assert job.kind == "embedding"
    results = await _results_when_done(manager, job.id)
    assert all(r.ok and r.embedding and len(r.embedding) == 1536 for r in results)
    assert results[0].embedding != results[1].embedding
    with pytest.raises(ValueError, match="'c1' is a chat request"):
        await manager.submit([BatchRequest(id="e", input="doc"), chat("c1", "hi")])
    await provider.aclose()


async def _results_when_done(manager: BatchManager, job_id: str) -> list[BatchResult]:
    await wait_for(manager, job_id)
    return await manager.get_results(job_id)


def _batch_total(admin: httpx.Client, provider: OpenAIProvider, batch_id: str) -> int:
    base = str(admin.base_url).removesuffix("/_emulator").removesuffix("/_emulator/")
    batch = httpx.get(f"{base}/v1/batches/{batch_id}", headers={"Authorization": "Bearer sk-test"}).json()
    return int(batch["request_counts"]["total"])


def _output_order(emulator: EmulatorProcess, batch_id: str) -> list[str]:
    headers = {"Authorization": "Bearer sk-test"}
    batch = httpx.get(f"{emulator.openai_base_url}/batches/{batch_id}", headers=headers).json()
    content = httpx.get(
        f"{emulator.openai_base_url}/files/{batch['output_file_id']}/content", headers=headers
    )
    return [json.loads(line)["custom_id"] for line in content.text.splitlines() if line.strip()]


async def test_batch_stuck_in_finalizing_reports_it_and_full_progress(
    openai_provider: OpenAIProvider, admin: httpx.Client
) -> None:
    queue_scenario(admin, "stuck_finalizing", "openai")
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat(f"r{i}", f"Summarise {i}") for i in range(4)])
    stuck = await wait_for(manager, job.id, condition=lambda j: j.detail == "finalizing")
    assert stuck.status == BatchStatus.PROCESSING
    assert (stuck.progress.completed, stuck.progress.percent) == (4, 100.0)
    with pytest.raises(JobNotFinishedError, match="finalizing"):
        await manager.get_results(job.id)


async def test_token_pool_is_shared_by_jobs_of_one_model_and_open_jobs_are_listed(
    emulator: EmulatorProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    requests = [chat(f"r{i}", "word " * 80) for i in range(2)]
    pool = estimate_tokens(requests[0]) * 2
    patch_config(admin, {"limits": {"openai_enqueued_tokens": pool}})
    provider = OpenAIProvider(
        "gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-test",
        limits=BatchLimits(max_requests=1000, max_bytes=10**8, max_enqueued_tokens=pool),
    )
    store = BatchStore(tmp_path / "b.db")
    manager = BatchManager(provider, store)
    first = await manager.submit(requests, job_id="a-first")
    second = await manager.submit(requests, job_id="b-second")
    assert (len(first.provider_batch_ids), len(second.provider_batch_ids)) == (1, 0)
    assert [job.id for job in await store.list_jobs(open_only=True)] == ["a-first", "b-second"]
    assert (await wait_for(manager, "a-first")).status == BatchStatus.COMPLETED
    assert (await wait_for(manager, "b-second")).status == BatchStatus.COMPLETED
    assert await store.list_jobs(open_only=True) == []
    assert all(r.ok for r in await manager.get_results("b-second"))
    await provider.aclose()


async def test_cancelling_a_job_whose_batch_just_ended_keeps_its_results(
    openai_provider: OpenAIProvider,
) -> None:
    manager = BatchManager(openai_provider)
    job = await manager.submit([chat(f"r{i}", f"Summarise {i}") for i in range(3)])
    [batch_id] = job.provider_batch_ids
    deadline = time.monotonic() + 60
    # The batch ends at the provider while the manager's own record still says it is running.
    while not (await openai_provider.get_batch(batch_id)).ended:
        assert time.monotonic() < deadline, "the batch never ended"
        await anyio.sleep(0.05)
    cancelled = await manager.cancel(job.id)
    assert (cancelled.status, cancelled.detail) == (BatchStatus.CANCELLED, "cancelled")
    assert [r.error for r in await manager.get_results(job.id)] == [None, None, None]
