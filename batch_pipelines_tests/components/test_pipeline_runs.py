"""One partition at a time through Dagster against the emulator: submit, sensor, results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import dagster as dg
import polars as pl

from batch_pipelines.components import BatchEngineResource, DuckDBResource, key_from_environment
from batch_pipelines.components.engine_session import open_engine, page_jobs
from batch_pipelines.components.requests_for_partition import request_keys
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import ROWS_PER_DAY, PipelineHarness

SUBMISSION = dg.AssetKey(["tickets", "submission"])
RESULTS = dg.AssetKey(["tickets", "results"])


def materialization_metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    assert event.materialization.metadata is not None
    return {name: value.value for name, value in event.materialization.metadata.items()}


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def test_partition_goes_from_input_to_queryable_results(harness: PipelineHarness) -> None:
    submitted = harness.submit("2026-11-02")
    assert submitted.success
    metadata = materialization_metadata(submitted, SUBMISSION)
    assert metadata["items_submitted"] == ROWS_PER_DAY
    assert metadata["items_skipped"] == 0
    assert isinstance(metadata["estimated_cost_usd"], float) and metadata["estimated_cost_usd"] > 0
    assert metadata["worst_case_cost_usd"] == metadata["estimated_cost_usd"]
    assert 0 < metadata["expected_cost_usd"] < metadata["worst_case_cost_usd"]
    assert str(metadata["cost_forecast"]).startswith("no history: 50 % of max_tokens")

    [request] = harness.wait_for_run_requests()
    assert request.partition_key == "2026-11-02"
    job_id, batch_ids, attempt = str(request.run_key).split(":")
    assert job_id.startswith("tickets.2026-11-02.")
    assert batch_ids.startswith("batch_") and attempt == "1"

    collected = harness.collect(request)
    assert collected.success
    metadata = materialization_metadata(collected, RESULTS)
    assert metadata["dagster/row_count"] == ROWS_PER_DAY
    assert check_outcomes(collected) == {
        "ids_unique": True,
        "every_input_item_accounted_for": True,
        "responses_match_schema": True,
        "dead_letter_share_within_threshold": True,
    }
    results = harness.results("2026-11-02")
    assert sorted(results["id"]) == [f"t1-{index}" for index in range(ROWS_PER_DAY)]
    assert (results["input_tokens"] > 0).all() and (results["cost_usd"] > 0).all()
    assert results["provider_batch_id"].to_list() == [batch_ids] * ROWS_PER_DAY
    for response, category in zip(results["response"], results["category"], strict=True):
        assert json.loads(response)["category"] == category

    with DuckDBResource(workdir=harness.engine.workdir).get_connection() as connection:
        rows = connection.execute(
            "SELECT partition_key, count(*), count(DISTINCT id), sum(output_tokens) > 0 "
            "FROM results GROUP BY 1"
        ).fetchall()
    assert rows == [("2026-11-02", ROWS_PER_DAY, ROWS_PER_DAY, True)]


def test_resubmitting_an_answered_partition_sends_nothing(harness: PipelineHarness) -> None:
    harness.submit("2026-11-01")
    harness.collect(harness.wait_for_run_requests()[0])
    again = harness.submit("2026-11-01")
    metadata = materialization_metadata(again, SUBMISSION)
    assert metadata["items_submitted"] == 0
    assert metadata["items_already_answered"] == ROWS_PER_DAY
    assert harness.new_run_requests(harness.tick()) == []


def test_a_row_edited_while_its_batch_ran_is_asked_again(harness: PipelineHarness) -> None:
    """Answers carry the hash of the request they answer, not of the row as it reads when they arrive."""
    harness.submit("2026-11-01")
    layout = harness.engine.layout(harness.spec)
    inputs = layout.read_partition("inputs", "tickets", "2026-11-01")
    edited_id = inputs["ticket_id"][0]
    layout.write_partition(
        inputs.with_columns(
            pl.when(pl.col("ticket_id") == edited_id)
            .then(pl.lit("The invoice total changed after I wrote this."))
            .otherwise(pl.col("body"))
            .alias("body")
        ),
        "inputs",
        "tickets",
        "2026-11-01",
    )
    assert harness.collect(harness.wait_for_run_requests()[0]).success
    again = harness.submit_only("2026-11-01")
    metadata = materialization_metadata(again, SUBMISSION)
    assert metadata["items_submitted"] == 1
    assert metadata["items_already_answered"] == ROWS_PER_DAY - 1


def test_a_partitions_job_id_hashes_its_keys_in_id_byte_order(harness: PipelineHarness) -> None:
    """The job id of a partition is what it has always been (a hash over its (id, request hash) pairs in
    the UTF-8 byte order of the ids): a partition submitted by an earlier release keeps its job, so
    re-running its submission creates no second one."""
    tickets = pl.read_parquet(harness.workdir / "data" / "tickets.parquet")
    odd_ids = ["é-1", "Z-2", "a-3", "中-4", "🙂-5", "a-10"]
    day = tickets.filter(pl.col("created_at").dt.day() == 2).with_columns(ticket_id=pl.Series(odd_ids))
    day.write_parquet(harness.workdir / "data" / "tickets.parquet")
    harness.submit("2026-11-02")
    [request] = harness.wait_for_run_requests()
    job_id = str(request.run_key).split(":")[0]

    inputs = harness.engine.layout(harness.spec).read_partition("inputs", "tickets", "2026-11-02")
    pairs = sorted(request_keys(harness.spec, inputs).iter_rows(), key=lambda pair: pair[0].encode())
    digest = hashlib.sha256("".join(f"{rid}\x1f{rhash}\x1e" for rid, rhash in pairs).encode())
    assert job_id == f"tickets.2026-11-02.{digest.hexdigest()[:12]}"
    assert [rid for rid, _ in pairs] == ["Z-2", "a-10", "a-3", "é-1", "中-4", "🙂-5"]


def test_sensor_reports_progress_as_numeric_observations(harness: PipelineHarness) -> None:
    harness.submit("2026-11-01")
    observation = harness.tick().asset_events[0]
    assert isinstance(observation, dg.AssetObservation)
    assert observation.asset_key == RESULTS and observation.partition == "2026-11-01"
    metadata = {name: value.value for name, value in observation.metadata.items()}
    assert metadata["items_total"] == ROWS_PER_DAY
    assert isinstance(metadata["percent_done"], float) and 0 <= metadata["percent_done"] <= 100
    assert isinstance(metadata["estimated_cost_usd"], float)


def test_sensor_pages_open_jobs_with_a_cursor(harness: PipelineHarness) -> None:
    harness.engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=harness.engine.base_url,
        workdir=harness.engine.workdir,
        sensor_page_size=1,
    )
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        harness.submit(day)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        result = harness.tick(cursor)
        assert len(result.asset_events) <= 1
        seen.extend(str(event.partition) for event in result.asset_events)
        cursor = result.cursor or None
    assert sorted(set(seen)) == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_expired_half_is_resubmitted_and_collected_as_a_new_attempt(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    emulator.queue_scenario("expire_half", provider="openai")
    harness.submit("2026-11-03")
    [first] = harness.wait_for_run_requests()
    collected = harness.collect(first)
    metadata = materialization_metadata(collected, RESULTS)
    resubmitted = metadata["resubmitted"]
    assert isinstance(resubmitted, int) and 0 < resubmitted < ROWS_PER_DAY
    assert metadata["dagster/row_count"] == ROWS_PER_DAY - resubmitted
    assert check_outcomes(collected)["every_input_item_accounted_for"] is False  # a warning while in flight

    [second] = harness.wait_for_run_requests()
    assert second.run_key != first.run_key and str(second.run_key).endswith(":2")
    collected = harness.collect(second)
    assert check_outcomes(collected)["every_input_item_accounted_for"] is True
    results = harness.results("2026-11-03")
    assert results.height == ROWS_PER_DAY and results["id"].n_unique() == ROWS_PER_DAY
    assert set(results["attempt"]) == {1, 2}


def test_a_batch_the_provider_forgot_is_resubmitted_by_the_results_step(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    submitted = harness.submit("2026-11-02")
    forgotten = str(materialization_metadata(submitted, SUBMISSION)["provider_batch_ids"])
    emulator.forget_batch(forgotten)  # before the sensor polls it: a 404 from now on

    [first] = harness.wait_for_run_requests()
    collected = harness.collect(first)
    assert collected.success
    assert materialization_metadata(collected, RESULTS)["resubmitted"] == ROWS_PER_DAY
    [second] = harness.wait_for_run_requests()
    assert str(second.run_key).endswith(":2")
    assert harness.collect(second).success
    results = harness.results("2026-11-02")
    assert results.height == ROWS_PER_DAY and results["id"].n_unique() == ROWS_PER_DAY
    assert set(results["attempt"]) == {2}
    assert emulator.stats()["batches_created"]["openai"] == 2


def test_a_second_run_for_an_attempt_already_collected_ends_cleanly_and_writes_nothing(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    """Two runs requested for one attempt (a retried launch, a manual re-execution): the one that comes
    second finds that attempt in the partition's latest results and neither collects nor materializes."""
    emulator.queue_scenario("expire_half", provider="openai")
    harness.submit("2026-11-03")
    [first] = harness.wait_for_run_requests()
    harness.collect(first)
    before = harness.results("2026-11-03")

    harness.launched_run_keys.discard(str(first.run_key))
    again = harness.collect(first)
    assert again.success
    assert [e for e in again.get_asset_materialization_events() if e.asset_key == RESULTS] == []
    assert again.get_asset_check_evaluations() == []
    assert harness.results("2026-11-03").equals(before)
    assert emulator.stats()["batches_created"]["openai"] == 2  # the first attempt and one resubmission


def test_permanent_failures_become_dead_letters_and_are_not_resent(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    emulator.configure({"faults": {"batch_error_rates": {"invalid_request": 0.5}}})
    harness.submit("2026-11-01")
    collected = harness.collect(harness.wait_for_run_requests()[0])
    assert check_outcomes(collected)["every_input_item_accounted_for"] is True
    dead = harness.dead_letters("2026-11-01")
    assert dead.height > 0
    assert harness.results("2026-11-01").height + dead.height == ROWS_PER_DAY
    assert not dead["transient"].any()
    assert all(message for message in dead["error_message"])
    assert materialization_metadata(collected, RESULTS)["resubmitted"] == 0

    again = materialization_metadata(harness.submit("2026-11-01"), SUBMISSION)
    assert again["items_submitted"] == 0
    assert again["items_failed_for_good"] == dead.height


def test_a_job_that_ended_outside_the_sensor_is_still_collected(harness: PipelineHarness) -> None:
    harness.submit("2026-11-02")

    async def refresh_until_ended() -> str:
        async with open_engine(harness.engine, harness.spec) as engine:
            [job], _ = await page_jobs(engine.store, harness.spec, after=None, limit=10)
            deadline = time.monotonic() + 60
            while not (job := await engine.manager.refresh(job.id)).status.is_terminal:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            return job.id

    job_id = asyncio.run(refresh_until_ended())  # as another client (e.g. a status command) would
    [request] = harness.new_run_requests(harness.tick())
    assert str(request.run_key).startswith(f"{job_id}:")
    assert harness.collect(request).success
    assert harness.results("2026-11-02").height == ROWS_PER_DAY


def test_anthropic_pipeline_goes_through_the_same_path(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    # Free-text answers: structured output over Anthropic batches is not wired end to end yet (see report).
    harness.spec = harness.spec.model_copy(
        update={"provider": "anthropic", "model": "claude-haiku-4-5", "response_schema": None}
    )
    harness.engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_ANTHROPIC_KEY", "sk-ant-test"),
        base_url=emulator.anthropic_base_url,
        workdir=harness.engine.workdir,
    )
    harness.submit("2026-11-01")
    [request] = harness.wait_for_run_requests()
    assert str(request.run_key).split(":")[1].startswith("msgbatch_")
    collected = harness.collect(request)
    assert check_outcomes(collected) == {
        "ids_unique": True,
        "every_input_item_accounted_for": True,
        "dead_letter_share_within_threshold": True,
    }
    results = harness.results("2026-11-01")
    assert results.height == ROWS_PER_DAY
    assert (results["response"].str.len_chars() > 0).all()
