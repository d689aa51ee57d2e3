"""The engine resource's enqueued-token pool: a small pool splits a partition into batches launched as
earlier ones finish; every item is still answered once."""

from __future__ import annotations

from batch_pipelines.components import BatchEngineResource
from batch_pipelines_tests.components.conftest import ROWS_PER_DAY, PipelineHarness


def test_a_small_token_pool_launches_batches_as_earlier_ones_finish(harness: PipelineHarness) -> None:
    # Each ticket request is about 20 estimated prompt tokens: a 30-token pool holds one batch at a time.
    engine = harness.engine
    harness.engine = BatchEngineResource(
        api_key=engine.api_key, base_url=engine.base_url, workdir=engine.workdir, enqueued_token_limit=30
    )

    submitted = harness.submit("2026-11-01")

    [materialization] = submitted.asset_materializations_for_node("tickets__submission")
    assert materialization.metadata["items_submitted"].value == ROWS_PER_DAY
    launched = str(materialization.metadata["provider_batch_ids"].value).split(", ")
    assert len(launched) == 1, "only the first batch fits the pool at submission"

    [request] = harness.wait_for_run_requests(timeout_s=120)
    assert harness.collect(request).success
    results = harness.results("2026-11-01")
    assert sorted(results["id"].to_list()) == sorted(f"t0-{index}" for index in range(ROWS_PER_DAY))
    assert results["provider_batch_id"].n_unique() == ROWS_PER_DAY


def test_without_a_limit_the_partition_goes_in_one_batch(harness: PipelineHarness) -> None:
    submitted = harness.submit("2026-11-01")

    [materialization] = submitted.asset_materializations_for_node("tickets__submission")
    assert len(str(materialization.metadata["provider_batch_ids"].value).split(", ")) == 1
    [request] = harness.wait_for_run_requests(timeout_s=120)
    assert harness.collect(request).success
    assert harness.results("2026-11-01")["provider_batch_id"].n_unique() == 1
