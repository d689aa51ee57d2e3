from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from batch_pipelines.components import BatchEngineResource, build_pipeline_defs
from batch_pipelines.pipeline import PipelineSpec, spec_version
from batch_pipelines.storage.parquet_files import write_parquet_atomic
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA, RESULTS_SCHEMA
from batch_pipelines_tests.components.conftest import ticket_spec


def write_partition_state(
    engine: BatchEngineResource, spec: PipelineSpec, table: str, key: str, **row: Any
) -> None:
    schema = RESULTS_SCHEMA if table == "results" else DEAD_LETTERS_SCHEMA
    values = {name: None for name in schema} | {"pipeline": spec.name, "partition_key": key, "id": "x"} | row
    path = engine.layout(spec).partition_path(table, spec.name, key)
    write_parquet_atomic(pl.DataFrame([values], schema=schema), path)


def evaluate(
    spec: PipelineSpec, engine: BatchEngineResource, instance: dg.DagsterInstance, now: datetime
) -> list[dg.RunRequest]:
    schedule = build_pipeline_defs(spec, batch_engine=engine).resolve_schedule_def(f"{spec.name}_nightly")
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=now, resources={"batch_engine": engine}
    ) as context:
        result = schedule(context)
    assert isinstance(result, list)
    return result


def test_nightly_runs_yesterday_changed_and_resubmittable_partitions(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    spec = ticket_spec(partitions={"daily": {"column": "created_at", "start_date": "2026-11-01"}})
    engine = BatchEngineResource(workdir=str(tmp_path))
    current = spec_version(spec)
    write_partition_state(engine, spec, "results", "2026-11-01", spec_version="an-older-prompt")
    write_partition_state(engine, spec, "results", "2026-11-02", spec_version=current)
    write_partition_state(
        engine, spec, "dead_letters", "2026-11-03", transient=True, error_type="batch_expired"
    )
    write_partition_state(
        engine, spec, "dead_letters", "2026-11-04", transient=False, error_type="invalid_request"
    )

    requests = evaluate(spec, engine, dagster_instance, datetime(2026, 11, 6, 3, 0, tzinfo=UTC))

    assert [request.partition_key for request in requests] == ["2026-11-01", "2026-11-03", "2026-11-05"]
    assert len({request.run_key for request in requests}) == 3
    assert all(
        request.tags["batch_pipelines/partition"] == f"tickets.{request.partition_key}"
        for request in requests
    )


def test_nightly_covers_every_static_key(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> None:
    spec = ticket_spec(partitions={"static": {"column": "region", "keys": ["eu", "us"]}})
    requests = evaluate(
        spec, BatchEngineResource(workdir=str(tmp_path)), dagster_instance, datetime(2026, 11, 6, 3)
    )
    assert [request.partition_key for request in requests] == ["eu", "us"]


def test_schedule_uses_the_declared_cron_and_timezone() -> None:
    spec = ticket_spec(schedule={"cron": "30 1 * * *", "timezone": "Europe/Berlin", "enabled": False})
    schedule = build_pipeline_defs(spec, batch_engine=BatchEngineResource()).resolve_schedule_def(
        "tickets_nightly"
    )
    assert schedule.cron_schedule == "30 1 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
