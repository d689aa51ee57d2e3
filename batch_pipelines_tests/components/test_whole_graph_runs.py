"""A run of a pipeline's whole graph (what a whole-graph backfill or "Materialize all" launches) and the
completion sensor working side by side: results written once, progress that moves, no run asked twice."""

from __future__ import annotations

import time

import dagster as dg

from batch_pipelines.components.progress_metadata import ETA_SECONDS, PERCENT_DONE
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import ROWS_PER_DAY, PipelineHarness, ticket_spec

RESULTS = dg.AssetKey(["tickets", "results"])
# Simulated seconds a batch spends in progress (x the fixture's 0.02 time scale: 4 s), requests
# finishing one by one, so a job outlasts several 1 s sensor intervals.
SLOW_IN_PROGRESS_S = 200


def slow_batches(emulator: EmulatorProcess) -> None:
    emulator.configure(
        {"lifecycle": {"in_progress_min_s": SLOW_IN_PROGRESS_S, "in_progress_max_s": SLOW_IN_PROGRESS_S}}
    )


def observed_progress(instance: dg.DagsterInstance, partition: str) -> list[dict[str, float]]:
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=RESULTS, asset_partitions=[partition]), limit=1000, ascending=True
    ).records
    progress = []
    for record in records:
        observation = record.asset_observation
        assert observation is not None
        metadata = {name: value.value for name, value in observation.metadata.items()}
        progress.append({key: metadata[key] for key in (PERCENT_DONE, ETA_SECONDS) if key in metadata})
    return progress


def results_materializations(instance: dg.DagsterInstance, partition: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RESULTS, asset_partitions=[partition]), limit=100
    ).records
    return len(records)


def results_written(run: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
    return [
        event.materialization
        for event in run.get_asset_materialization_events()
        if event.asset_key == RESULTS
    ]


def tick_until_quiet(
    harness: PipelineHarness, cursor: str | None, ticks: int
) -> tuple[list[dg.RunRequest], str | None]:
    requests: list[dg.RunRequest] = []
    for _ in range(ticks):
        result = harness.tick(cursor)
        cursor = result.cursor or None
        requests.extend(result.run_requests or [])
    return requests, cursor


def test_a_whole_graph_run_waits_for_its_job_and_writes_results_once(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    slow_batches(emulator)
    harness.spec = ticket_spec(sensor_interval_seconds=1)
    run = harness.materialize_all("2026-11-01")
    assert run.success
    [materialization] = results_written(run)
    assert materialization.metadata["dagster/row_count"].value == ROWS_PER_DAY
    assert all(evaluation.passed for evaluation in run.get_asset_check_evaluations())
    waited = [
        {name: value.value for name, value in event.asset_observation_data.asset_observation.metadata.items()}
        for event in run.all_events
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    assert any(0 < float(progress[PERCENT_DONE]) < 100 for progress in waited), waited

    requests, _ = tick_until_quiet(harness, None, ticks=3)
    assert requests == [], "the sensor asks for no second collection of an attempt already written"
    assert results_materializations(harness.instance, "2026-11-01") == 1
    assert harness.results("2026-11-01").height == ROWS_PER_DAY


def test_a_job_still_running_after_the_wait_is_left_to_the_sensor(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    slow_batches(emulator)
    harness.spec = ticket_spec(results_wait_seconds=0)
    run = harness.materialize_all("2026-11-02")
    assert run.success, "a results step that meets a running job does not fail"
    assert results_written(run) == []
    assert run.get_asset_check_evaluations() == []
    assert observed_progress(harness.instance, "2026-11-02"), "it reports the job's progress instead"

    [request] = harness.wait_for_run_requests(timeout_s=120)
    collected = harness.collect(request)
    assert collected.success
    assert harness.results("2026-11-02").height == ROWS_PER_DAY
    assert results_materializations(harness.instance, "2026-11-02") == 1


def test_sensor_observations_show_progress_while_a_job_runs(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    """A job that outlasts several sensor intervals is seen part-done, its percent rising."""
    slow_batches(emulator)
    harness.spec = ticket_spec(sensor_interval_seconds=1)
    harness.submit("2026-11-03")
    cursor: str | None = None
    requests: list[dg.RunRequest] = []
    deadline = time.monotonic() + 120
    while not requests:
        assert time.monotonic() < deadline, "the job did not end"
        result = harness.tick(cursor)
        cursor = result.cursor or None
        for event in result.asset_events:
            harness.instance.report_runless_asset_event(event)
        requests = list(result.run_requests or [])
        time.sleep(harness.spec.sensor_interval_seconds)
    progress = observed_progress(harness.instance, "2026-11-03")
    percents = [float(entry[PERCENT_DONE]) for entry in progress]
    assert any(0 < percent < 100 for percent in percents), percents
    assert percents == sorted(percents)
    assert any(
        float(entry.get(ETA_SECONDS, 0)) > 0 for entry in progress if 0 < float(entry[PERCENT_DONE]) < 100
    )


def test_sensor_asks_once_for_each_ended_job(harness: PipelineHarness) -> None:
    harness.submit("2026-11-01")
    [request] = harness.wait_for_run_requests()
    later, _ = tick_until_quiet(harness, harness.last_cursor, ticks=3)
    assert later == [], "no request is repeated on later ticks (nothing for Dagster to skip)"
    assert harness.collect(request).success
