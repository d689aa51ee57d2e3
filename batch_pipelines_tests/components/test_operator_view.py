"""What an operator sees in the Dagster UI: plottable progress metadata under the same keys on every event,
owners/kinds/groups on the assets, the dead-letter share check, and the budget guard on submission."""

from __future__ import annotations

import dagster as dg
import pytest

from batch_pipelines.components.progress_metadata import ALWAYS_PRESENT, COST_SAVED_USD, COST_USD
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import ROWS_PER_DAY, PipelineHarness

SUBMISSION = dg.AssetKey(["tickets", "submission"])
RESULTS = dg.AssetKey(["tickets", "results"])
NUMERIC = (dg.IntMetadataValue, dg.FloatMetadataValue)


def materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dg.AssetMaterialization:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return event.materialization


def check_evaluation(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_every_event_carries_the_same_numeric_progress_keys(harness: PipelineHarness) -> None:
    submitted = materialization(harness.submit("2026-11-01"), SUBMISSION).metadata
    observation = harness.tick().asset_events[0]
    assert isinstance(observation, dg.AssetObservation)
    [request] = harness.wait_for_run_requests()
    collected = materialization(harness.collect(request), RESULTS).metadata

    for metadata in (submitted, observation.metadata, collected):
        for key in ALWAYS_PRESENT:
            assert isinstance(metadata[key], NUMERIC), f"{key} is {metadata[key]!r}"
    assert submitted["items_total"].value == ROWS_PER_DAY and submitted["percent_done"].value == 0.0
    assert collected["items_done"].value == ROWS_PER_DAY and collected["percent_done"].value == 100.0
    assert collected["input_tokens"].value > 0 and collected["output_tokens"].value > 0
    for key in (COST_USD, COST_SAVED_USD, "items_per_hour", "eta_seconds"):
        assert isinstance(collected[key], dg.FloatMetadataValue)
    assert collected[COST_SAVED_USD].value == pytest.approx(collected[COST_USD].value)  # a 50 % discount
    assert collected["eta_seconds"].value == 0.0
    assert isinstance(collected["dead_letter_share"], dg.FloatMetadataValue)


def test_assets_read_well_in_the_graph(harness: PipelineHarness) -> None:
    harness.spec = harness.spec.model_copy(update={"owners": ["team:ml-platform", "ops@example.com"]})
    for name in ("input", "submission", "results"):
        spec = next(iter(harness.asset(name).specs))
        assert spec.group_name == "tickets"
        assert spec.owners == ["team:ml-platform", "ops@example.com"]
        assert spec.kinds and spec.description
    assert "openai" in next(iter(harness.asset("submission").specs)).kinds


def test_dead_letter_share_over_the_threshold_fails_its_check(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    emulator.configure({"faults": {"batch_error_rates": {"invalid_request": 0.5}}})
    harness.submit("2026-11-01")
    [request] = harness.wait_for_run_requests()
    collected = harness.collect(request)
    evaluation = check_evaluation(collected, "dead_letter_share_within_threshold")
    share = evaluation.metadata["dead_letter_share"].value
    assert isinstance(share, float) and share > 0.05
    assert evaluation.passed is False
    assert "invalid_request" in str(evaluation.metadata["by_error_type"].value)

    harness.spec = harness.spec.model_copy(update={"dead_letter_threshold": 1.0})
    again = harness.run_checks()  # the checks alone, over the latest materialized partition's files
    assert again.get_asset_materialization_events() == []
    assert check_evaluation(again, "dead_letter_share_within_threshold").passed is True
    assert check_evaluation(again, "every_input_item_accounted_for").passed is True


def test_a_run_over_its_budget_is_refused_before_upload(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    harness.spec = harness.spec.model_copy(update={"max_cost_usd": 0.000001})
    refused = dg.materialize(
        [harness.asset("input"), harness.asset("submission")],
        partition_key="2026-11-01",
        instance=harness.instance,
        resources={"batch_engine": harness.engine},
        raise_on_error=False,
    )
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "exceeds the budget" in message and "per run" in message
    assert emulator.stats()["files"] == 0


def test_a_daily_budget_counts_the_days_earlier_jobs(
    harness: PipelineHarness, emulator: EmulatorProcess
) -> None:
    first = materialization(harness.submit("2026-11-01"), SUBMISSION).metadata
    estimate = first["estimated_cost_usd"].value
    assert isinstance(estimate, float) and estimate > 0
    harness.spec = harness.spec.model_copy(update={"max_cost_usd": estimate * 1.5, "max_cost_per": "run"})
    assert harness.submit("2026-11-02").success  # on its own it fits

    harness.spec = harness.spec.model_copy(update={"max_cost_usd": estimate * 2.5, "max_cost_per": "day"})
    refused = dg.materialize(
        [harness.asset("input"), harness.asset("submission")],
        partition_key="2026-11-03",
        instance=harness.instance,
        resources={"batch_engine": harness.engine},
        raise_on_error=False,
    )
    assert not refused.success
    assert emulator.stats()["batches_created"]["openai"] == 2
