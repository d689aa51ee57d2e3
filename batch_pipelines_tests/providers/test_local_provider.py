"""The local provider through the engine: embeddings computed by a background worker on this machine.

Each test drives BatchManager exactly as the Dagster layer does (submit, refresh, results, cancel,
retry); the model is the real all-MiniLM-L6-v2 shipped in a package, on the CPU.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import polars as pl
import pytest

from batch_pipelines import BatchManager, BatchRequest, BatchStatus
from batch_pipelines.engine.models import BatchJob, Embedding
from batch_pipelines.providers import make_provider
from batch_pipelines.providers.local import LocalProvider, ModelNotFoundError, resolve_model_path
from batch_pipelines_tests.local_model import TEST_MODEL_DIMENSIONS, require_local_model

DEADLINE_S = 180  # the first batch pays for importing torch and loading the model


@pytest.fixture
def model() -> str:
    return require_local_model()


@pytest.fixture
def provider(model: str, tmp_path: Path) -> Iterator[LocalProvider]:
    local = LocalProvider(model, work_dir=tmp_path, idle_exit_s=20)
    yield local
    assert local.stop_worker(timeout_s=60)


def cosine(a: Embedding | None, b: Embedding | None) -> float:
    assert a is not None and b is not None
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


async def wait_until_ended(manager: BatchManager, job_id: str) -> BatchJob:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        job = await manager.refresh(job_id)
        if job.status.is_terminal and job.detail != "cancelling":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status} ({job.detail})"
        await anyio.sleep(0.2)


REVIEWS = {
    "a": "The kettle boils water in two minutes and switches off by itself.",
    "a-copy": "The kettle boils water in 2 minutes and switches itself off.",
    "b": "My backpack's shoulder strap tore after one week of commuting.",
    "c": "Customer service refunded the broken headphones within a day.",
}


@pytest.mark.anyio
async def test_embeddings_arrive_through_the_engine_and_a_new_client_can_follow_the_job(
    provider: LocalProvider, tmp_path: Path, model: str
) -> None:
    submitter = BatchManager(provider)
    requests = [BatchRequest(id=key, input=text) for key, text in REVIEWS.items()]
    job = await submitter.submit(requests, job_id="reviews-1")
    assert job.provider == "local" and len(job.provider_batch_ids) == 1
    await provider.aclose()  # the submitting process may end: the worker carries on

    # A fresh client on the same working folder, as a sensor tick in another process would build it.
    follower = BatchManager(make_provider("local", model=model, work_dir=tmp_path), submitter.store)
    finished = await wait_until_ended(follower, "reviews-1")
    assert finished.status == BatchStatus.COMPLETED
    results = {result.id: result for result in await follower.get_results("reviews-1")}

    assert set(results) == set(REVIEWS)
    for result in results.values():
        assert result.ok, result.error
        assert result.embedding is not None and len(result.embedding) == TEST_MODEL_DIMENSIONS
        assert result.input_tokens > 5
    near = cosine(results["a"].embedding, results["a-copy"].embedding)
    far = max(cosine(results["a"].embedding, results[other].embedding) for other in ("b", "c"))
    assert near > 0.9 > far


@pytest.mark.anyio
async def test_each_vector_is_the_models_own_float32_output_bit_for_bit(model: str, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    provider = LocalProvider(model, work_dir=tmp_path, max_batch_size=1, idle_exit_s=20)
    manager = BatchManager(provider)
    await manager.submit([BatchRequest(id=key, input=text) for key, text in REVIEWS.items()], job_id="exact")
    assert (await wait_until_ended(manager, "exact")).status == BatchStatus.COMPLETED
    collected = await manager.get_results("exact")  # from the worker's parts as they are collected
    stored = await manager.get_results("exact")  # read back from the engine's store
    assert provider.stop_worker(timeout_s=60)

    reference = SentenceTransformer(str(resolve_model_path(model)), device="cpu", local_files_only=True)
    for results in (collected, stored):
        for result in results:
            expected = reference.encode([REVIEWS[result.id]], convert_to_numpy=True)[0]
            vector = np.asarray(result.embedding)
            assert vector.dtype == np.float32 and np.array_equal(vector, expected), result.id


@pytest.mark.anyio
async def test_cancelled_items_are_resubmitted_and_answered(provider: LocalProvider) -> None:
    manager = BatchManager(provider)
    requests = [
        BatchRequest(id=f"r{i}", input=f"review number {i}: " + "fine product " * (i % 7)) for i in range(300)
    ]
    await manager.submit(requests, job_id="cancel-me")
    cancelled = await manager.cancel("cancel-me")
    assert cancelled.status == BatchStatus.CANCELLED
    await wait_until_ended(manager, "cancel-me")
    first = await manager.get_results("cancel-me")
    not_run = [result for result in first if not result.ok]
    assert all(result.error_type == "cancelled" and result.retryable for result in not_run)

    if not_run:  # the worker may have finished before the cancel landed; usually it had not started
        await manager.retry_failed("cancel-me")
        await wait_until_ended(manager, "cancel-me")
    final = await manager.get_results("cancel-me")
    assert len(final) == 300
    assert all(
        result.ok and result.embedding is not None and len(result.embedding) == TEST_MODEL_DIMENSIONS
        for result in final
    )


@pytest.mark.anyio
async def test_a_model_that_is_not_installed_is_refused_at_submission(tmp_path: Path, model: str) -> None:
    manager = BatchManager(LocalProvider("no-such-model-package", work_dir=tmp_path))
    with pytest.raises(ModelNotFoundError, match="no-such-model-package"):
        await manager.submit([BatchRequest(id="x", input="hello")], job_id="missing-model")


@pytest.mark.anyio
async def test_chat_requests_are_refused_naming_the_request(tmp_path: Path) -> None:
    manager = BatchManager(LocalProvider(str(tmp_path / "model"), work_dir=tmp_path))
    chat = BatchRequest(id="ticket-7", messages=[{"role": "user", "content": "Classify this"}])
    with pytest.raises(ValueError, match="ticket-7"):
        await manager.submit([chat], job_id="chat-job")


@pytest.mark.anyio
async def test_a_killed_worker_is_replaced_and_resumes_without_embedding_twice(
    model: str, tmp_path: Path
) -> None:
    # Parts of 8 items: a fast machine embeds all 120 within the one-second part interval, and the kill
    # must come between parts.
    provider = LocalProvider(model, work_dir=tmp_path, max_batch_size=4, part_items=8, idle_exit_s=20)
    manager = BatchManager(provider)
    requests = [
        BatchRequest(id=f"r{i:03d}", input=f"item {i}: the strap held up on a long hike") for i in range(120)
    ]
    job = await manager.submit(requests, job_id="resume-me")
    batch_id = job.provider_batch_ids[0]
    deadline = time.monotonic() + DEADLINE_S
    while (await provider.get_batch(batch_id)).completed == 0:  # mid-batch: some passes written
        assert time.monotonic() < deadline
        await anyio.sleep(0.05)
    worker_pid = int((provider.root / "worker.lock").read_text())
    os.kill(worker_pid, signal.SIGKILL)  # the worker this test's provider started

    finished = await wait_until_ended(manager, "resume-me")  # polling starts a new worker
    assert finished.status == BatchStatus.COMPLETED
    results = await manager.get_results("resume-me")
    assert [r.id for r in results] == [r.id for r in requests] and all(r.ok for r in results)
    parts = sorted((provider.root / batch_id).glob("output-*.parquet"))
    assert len(parts) > 1  # the first worker had written some before it was killed
    assert {stat.S_IMODE(part.stat().st_mode) for part in parts} == {0o600}
    custom_ids = pl.read_parquet(parts, columns=["custom_id"])["custom_id"].to_list()
    assert sorted(custom_ids) == sorted(r.id for r in requests)  # each item embedded once
    assert int((provider.root / "worker.lock").read_text()) != worker_pid
    assert provider.stop_worker(timeout_s=60)
