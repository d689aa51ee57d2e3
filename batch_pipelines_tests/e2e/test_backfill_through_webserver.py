"""The product as an operator meets it: a Dagster daemon and webserver as real processes, a backfill
launched through the webserver's GraphQL API, the completion sensor collecting each partition, and the
answers queryable in DuckDB — including a partition whose provider batch expires half-done and is
finished by the automatic resubmission, and a backfill of every asset of the demo pipeline (what
"Materialize all" launches) that ends green with each partition's results written once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.components.input_asset import input_key
from batch_pipelines.components.results_asset import results_key
from batch_pipelines.components.submission_asset import submission_key
from batch_pipelines.demo.dataset import generate_tickets
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.pipeline.spec import parse_pipeline_spec
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.views import create_views
from batch_pipelines_tests.e2e.deployment import DagsterDeployment

PARTITIONS = ["2026-11-01", "2026-11-02", "2026-11-03"]
PIPELINE = "e2e_tickets"


def pipeline_spec(dataset: Path) -> dict[str, object]:
    return {
        "name": PIPELINE,
        "source": {"path": str(dataset)},
        "partitions": {
            "daily": {"column": "created_at", "start_date": PARTITIONS[0], "end_date": "2026-11-04"}
        },
        "id_column": "ticket_id",
        "prompt": {"system": "Triage the ticket.", "user": "{subject}\n\n{body}"},
        "provider": "openai",
        "model": "gpt-4o-mini",
        "params": {"max_tokens": 40},
        "sensor_interval_seconds": 2,
    }


def partition_counts(
    connection: duckdb.DuckDBPyConnection, table: str, pipeline: str = PIPELINE
) -> dict[str, int]:
    rows = connection.execute(
        f"SELECT partition_key, count(*) FROM {table} WHERE pipeline = ? GROUP BY ALL", [pipeline]
    ).fetchall()
    return {str(key): int(count) for key, count in rows}


def input_counts(
    layout: StorageLayout, pipeline: str = PIPELINE, partitions: list[str] = PARTITIONS
) -> dict[str, int]:
    """Rows the input asset accepted, per partition it has materialized."""
    paths = {key: layout.partition_path("inputs", pipeline, key) for key in partitions}
    return {
        key: pl.scan_parquet(path).select(pl.len()).collect().item()
        for key, path in paths.items()
        if path.exists()
    }


@pytest.mark.timeout(1800)
def test_backfill_launched_through_the_webserver_lands_every_partition(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    dataset = workdir / "source" / "tickets.parquet"
    dataset.parent.mkdir(parents=True)
    tickets = generate_tickets(rows_per_day=40, days=3)
    tickets.write_parquet(dataset)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(pipeline_spec(dataset)))
    spec = parse_pipeline_spec(json.loads(spec_file.read_text()))

    with EmulatorProcess(time_scale=0.02, seed=11) as emulator:
        emulator.queue_scenario("expire_half")  # the first provider batch created expires half-done
        env = {
            "BATCH_PIPELINES_E2E_SPEC": str(spec_file),
            "BATCH_PIPELINES_HOME": str(workdir),
            "BATCH_PIPELINES_API_KEY": "sk-e2e-secret",
            "BATCH_PIPELINES_BASE_URL": emulator.openai_base_url,
        }
        with DagsterDeployment(
            tmp_path / "dagster_home", "batch_pipelines_tests.e2e.location", env
        ) as dagster:
            dagster.launch_asset_backfill(
                [list(input_key(spec).path), list(submission_key(spec).path)], PARTITIONS
            )
            layout = StorageLayout.for_workdir(workdir)
            deadline = time.monotonic() + 480
            while True:
                inputs = input_counts(layout)
                with duckdb.connect() as connection:
                    create_views(connection, layout)
                    results = partition_counts(connection, "results")
                if len(inputs) == len(PARTITIONS) and results == inputs:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"inputs {inputs} but results {results} after 480 s\n{dagster.logs()}")
                time.sleep(2)

        with duckdb.connect() as connection:
            create_views(connection, layout)
            rejects = partition_counts(connection, "rejects")
            attempts = connection.execute(
                "SELECT partition_key, max(attempt), count(DISTINCT provider_batch_id) FROM results "
                "WHERE pipeline = ? GROUP BY ALL ORDER BY 1",
                [PIPELINE],
            ).fetchall()
            duplicates = connection.execute(
                "SELECT count(*) - count(DISTINCT (partition_key, id)) FROM results WHERE pipeline = ?",
                [PIPELINE],
            ).fetchone()
        stats = emulator.stats()

    per_day = tickets.group_by(pl.col("created_at").dt.date().cast(pl.String).alias("day")).len()
    source_rows = {str(day): int(count) for day, count in per_day.iter_rows()}
    for partition in PARTITIONS:
        assert inputs[partition] + rejects.get(partition, 0) == source_rows[partition]
    assert duplicates == (0,)
    resubmitted = [row for row in attempts if row[1] > 1]
    assert len(resubmitted) == 1, f"exactly one partition needed a second attempt: {attempts}"
    assert resubmitted[0][2] == 2, "its answers come from the expired batch and the resubmitted one"
    assert stats["batches_created"]["openai"] == len(PARTITIONS) + 1


@pytest.mark.timeout(900)
def test_a_backfill_of_every_demo_asset_ends_green_with_results_written_once(tmp_path: Path) -> None:
    """The demo pipeline as `batch-pipelines demo --data-only` leaves it, every asset backfilled through
    GraphQL: each run's results step waits for its job and collects it, the sensor adds nothing."""
    workdir = tmp_path / "work"
    assert main(["demo", "--data-only", "--workdir", str(workdir), "--rows-per-day", "30"]) == 0
    partitions = ["2026-11-01", "2026-11-02", "2026-11-03"]
    pipeline = "support_tickets"
    spec = parse_pipeline_spec(
        {
            "name": pipeline,
            "source": {"path": "demo/tickets/*.parquet"},
            "partitions": {"daily": {"column": "created_at", "start_date": partitions[0]}},
            "id_column": "ticket_id",
            "prompt": {"user": "{subject}"},
            "provider": "openai",
            "model": "gpt-4o-mini",
        }
    )
    assets = [list(key.path) for key in (input_key(spec), submission_key(spec), results_key(spec))]

    with EmulatorProcess(time_scale=0.2, seed=5) as emulator:
        env = {
            "BATCH_PIPELINES_HOME": str(workdir),
            "BATCH_PIPELINES_API_KEY": "sk-e2e-secret",
            "BATCH_PIPELINES_BASE_URL": emulator.openai_base_url,
            "BATCH_PIPELINES_SENSOR_INTERVAL_S": "2",
        }
        with DagsterDeployment(tmp_path / "dagster_home", "batch_pipelines.definitions", env) as dagster:
            backfill = dagster.launch_asset_backfill(assets, partitions)
            status = dagster.wait_for_backfill(backfill, timeout_s=480)
            # sensor ticks after the backfill see every job ended and collected: they add no materialization
            ticks_after = time.monotonic() + 10
            while time.monotonic() < ticks_after:
                time.sleep(1)
            failed = dagster.runs(statuses=["FAILURE", "CANCELED"])
            runs = dagster.runs()
            materialized = dagster.materialized_partitions(list(results_key(spec).path))
            logs = dagster.logs()
        stats = emulator.stats()

    assert status == "COMPLETED_SUCCESS", logs
    assert failed == []
    assert sorted(materialized) == partitions, "each partition's results materialized exactly once"
    backfill_runs = [run for run in runs if {"key": "dagster/backfill", "value": backfill} in run["tags"]]
    assert len(backfill_runs) == len(partitions), "one run per partition, none retried"
    layout = StorageLayout.for_workdir(workdir)
    inputs = input_counts(layout, pipeline, partitions)
    with duckdb.connect() as connection:
        create_views(connection, layout)
        results = partition_counts(connection, "results", pipeline)
        [(duplicates,)] = connection.execute(
            "SELECT count(*) - count(DISTINCT (partition_key, id)) FROM results WHERE pipeline = ?",
            [pipeline],
        ).fetchall()
    assert results == inputs and sum(inputs.values()) > 0
    assert duplicates == 0
    assert stats["batches_created"]["openai"] == len(partitions)
