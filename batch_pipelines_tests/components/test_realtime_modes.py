"""`mode: realtime` and `mode: auto` through Dagster against the emulator: the synchronous API under the
shared rate limiter, results in the same tables as the batch path, nothing paid twice."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from batch_pipelines.components import (
    BatchEngineResource,
    BatchPipelineComponent,
    build_pipeline_defs,
    key_from_environment,
)
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.pipeline import PipelineSpecError
from batch_pipelines_tests.components.conftest import PipelineHarness, ticket_spec

DAY = "2026-11-02"
URGENT_THRESHOLD = 5


def write_prioritised_tickets(workdir: Path, rows: int = 8, poisoned: int | None = None) -> list[str]:
    """Tickets of one day with a `priority` column (every third is urgent); `poisoned` names a row the
    emulator refuses for good. Returns the ids."""
    tickets = [
        {
            "ticket_id": f"t{index}",
            "created_at": datetime(2026, 11, 2) + timedelta(minutes=index),
            "subject": f"Subject {index}",
            "body": f"Body {index}" + (" [[emulator:invalid_request]]" if index == poisoned else ""),
            "priority": 9 if index % 3 == 0 else 1,
        }
        for index in range(rows)
    ]
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    pl.DataFrame(tickets).write_parquet(workdir / "data" / "tickets.parquet")
    return [str(ticket["ticket_id"]) for ticket in tickets]


def chat_calls(emulator: EmulatorProcess) -> int:
    return int(emulator.stats()["requests_by_endpoint"].get("chat.completions", 0))


def batches_created(emulator: EmulatorProcess) -> int:
    return int(emulator.stats()["batches_created"].get("openai", 0))


class ModeHarness(PipelineHarness):
    """The shared harness with the rate limiter bound too."""

    limiter: RateLimiterResource
    tmp_limiter_path: Path

    @property
    def defs(self) -> dg.Definitions:
        return build_pipeline_defs(self.spec, batch_engine=self.engine, rate_limiter=self.limiter)

    def resources(self) -> dict[str, Any]:
        return {"batch_engine": self.engine, "rate_limiter": self.limiter}

    def run(self, *names: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [self.asset(name) for name in names],
            partition_key=DAY,
            instance=self.instance,
            resources=self.resources(),
            raise_on_error=raise_on_error,
        )


@pytest.fixture
def make_harness(tmp_path: Path, emulator: EmulatorProcess, dagster_instance: dg.DagsterInstance) -> Any:
    def make(**spec_changes: Any) -> ModeHarness:
        workdir = tmp_path / "work"
        engine = BatchEngineResource(
            api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
            base_url=emulator.openai_base_url,
            workdir=str(workdir),
        )
        harness = ModeHarness(
            spec=ticket_spec(**spec_changes), engine=engine, instance=dagster_instance, workdir=workdir
        )
        harness.tmp_limiter_path = tmp_path / "limiter.db"
        harness.limiter = RateLimiterResource(
            url=f"sqlite:///{harness.tmp_limiter_path}",
            requests_per_minute=6_000,
            tokens_per_minute=2_000_000,
        )
        return harness

    return make


def metadata_of(result: dg.ExecuteInProcessResult, name: str) -> dict[str, object]:
    key = dg.AssetKey(["tickets", name])
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    assert event.materialization.metadata is not None
    return {label: value.value for label, value in event.materialization.metadata.items()}


def test_realtime_partition_accounts_for_every_item_and_a_rerun_pays_nothing(
    make_harness: Any, emulator: EmulatorProcess
) -> None:
    harness: ModeHarness = make_harness(mode="realtime", dead_letter_threshold=0.5)
    ids = write_prioritised_tickets(harness.workdir, poisoned=4)

    first = harness.run("input", "results")
    checks = {check.check_name: check.passed for check in first.get_asset_check_evaluations()}
    assert (
        checks["every_input_item_accounted_for"] and checks["ids_unique"] and checks["responses_match_schema"]
    )
    results, dead = harness.results(DAY), harness.dead_letters(DAY)
    assert sorted([*results["id"], *dead["id"]]) == sorted(ids)
    assert dead["id"].to_list() == ["t4"] and dead["error_type"].to_list() == ["invalid_request"]
    assert (results["cost_usd"] > 0).all() and results["category"].is_not_null().all()
    assert set(results["job_id"]) == {"realtime:tickets:2026-11-02"}
    assert metadata_of(first, "results")["dagster/row_count"] == len(ids) - 1
    assert batches_created(emulator) == 0
    with sqlite3.connect(harness.tmp_limiter_path) as limiter_state:
        keys = [row[0] for row in limiter_state.execute("SELECT key FROM rate_limiter_buckets")]
    assert keys == ["openai:gpt-4o-mini"]  # every call drew on the shared budget of provider:model
    calls_after_first = chat_calls(emulator)
    assert calls_after_first == len(ids)  # a permanent error is not retried

    again = harness.run("input", "results")
    assert chat_calls(emulator) == calls_after_first
    assert metadata_of(again, "results")["realtime_requests_sent"] == 0
    assert harness.results(DAY).equals(results) and harness.dead_letters(DAY).equals(dead)


def test_realtime_packing_answers_several_items_per_call(
    make_harness: Any, emulator: EmulatorProcess
) -> None:
    harness: ModeHarness = make_harness(mode="realtime", realtime={"items_per_prompt": 4})
    ids = write_prioritised_tickets(harness.workdir)

    harness.run("input", "results")

    assert sorted(harness.results(DAY)["id"]) == sorted(ids)
    assert chat_calls(emulator) < len(ids)


def test_auto_answers_urgent_items_now_and_the_sensor_collects_the_rest_into_the_same_results(
    make_harness: Any, emulator: EmulatorProcess
) -> None:
    harness: ModeHarness = make_harness(
        mode="auto", urgent={"priority_column": "priority", "threshold": URGENT_THRESHOLD}
    )
    ids = write_prioritised_tickets(harness.workdir)
    urgent = {ticket for index, ticket in enumerate(ids) if index % 3 == 0}

    submitted = harness.run("input", "submission")
    metadata = metadata_of(submitted, "submission")
    assert metadata["realtime_answered_this_run"] == len(urgent) == chat_calls(emulator)
    assert metadata["items_submitted"] == len(ids) - len(urgent)
    assert set(harness.results(DAY)["id"]) == urgent  # before any batch result exists
    assert batches_created(emulator) == 1

    [request] = harness.wait_for_run_requests()
    assert harness.collect(request).success
    results = harness.results(DAY)
    assert sorted(results["id"]) == sorted(ids)
    by_path = dict(zip(results["id"], results["provider_batch_id"], strict=True))
    assert {ticket for ticket, batch_id in by_path.items() if batch_id is None} == urgent
    assert results["category"].is_not_null().all()

    harness.run("input", "submission")
    assert chat_calls(emulator) == len(urgent) and batches_created(emulator) == 1


def test_yaml_component_declares_a_realtime_pipeline_without_sensor_round_trip() -> None:
    attributes = ticket_spec().model_dump(mode="json", exclude_none=True)
    attributes.update(mode="realtime", realtime={"requests_per_minute": 500, "items_per_prompt": 5})
    yaml = {"type": "batch_pipelines.components.BatchPipelineComponent", "attributes": attributes}
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=BatchPipelineComponent, defs_yaml_contents=yaml)
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, BatchPipelineComponent)
            assert component.pipeline_spec().realtime.items_per_prompt == 5
            limiter = RateLimiterResource(requests_per_minute=500, tokens_per_minute=100_000)
            bound = dg.Definitions(resources={"batch_engine": BatchEngineResource(), "rate_limiter": limiter})
            graph = dg.Definitions.merge(defs, bound).resolve_asset_graph()
            results = graph.get(dg.AssetKey(["tickets", "results"]))
            assert results.parent_keys == {dg.AssetKey(["tickets", "input"])}
            assert not list(defs.sensors or [])
            assert {job.name for job in defs.jobs or []} == {"tickets_submit_job"}


def test_auto_names_the_priority_column_the_input_lacks(make_harness: Any) -> None:
    harness: ModeHarness = make_harness(mode="auto", urgent={"priority_column": "severity", "threshold": 1})
    write_prioritised_tickets(harness.workdir)

    result = harness.run("input", "submission", raise_on_error=False)

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "'urgent.priority_column'" in str(failure.step_failure_data.error)
    assert "severity" in str(failure.step_failure_data.error)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mode": "streaming"}, "field 'mode': unknown mode 'streaming'"),
        ({"mode": "auto"}, "field 'urgent': 'mode: auto' needs 'urgent'"),
        (
            {"urgent": {"priority_column": "p", "threshold": 5}},
            "field 'urgent': 'urgent' applies to 'mode: auto'",
        ),
        ({"mode": "realtime", "provider": "bedrock"}, "field 'mode': 'mode: realtime' needs a provider with"),
        (
            {"mode": "auto", "urgent": {"priority_column": "ticket_id", "threshold": 1}},
            "urgent.priority_column",
        ),
        ({"mode": "realtime", "realtime": {"items_per_prompt": 1}}, "field 'realtime.items_per_prompt'"),
        (
            {"mode": "realtime", "realtime": {"requests_per_minute": 0}},
            "field 'realtime.requests_per_minute'",
        ),
        ({"mode": "auto", "urgent": {"threshold": 5}}, "field 'urgent.priority_column': Field required"),
    ],
)
def test_bad_mode_declarations_name_the_field(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(PipelineSpecError) as refused:
        ticket_spec(**changes)
    assert named in str(refused.value)
