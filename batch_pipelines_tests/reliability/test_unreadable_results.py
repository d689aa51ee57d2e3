"""A corrupt results file: named by `query` and `report`, the other views keep working, and a re-run of the
partition rewrites it from what was collected, asking the provider for nothing again."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.cli_process import run_cli
from batch_pipelines_tests.reliability.pipeline_setup import (
    PIPELINE,
    days,
    make_driver,
    pipeline_spec,
    write_tickets,
)
from batch_pipelines_tests.reliability.provider_ledger import read_openai_ledger

cli = run_cli


def test_a_corrupt_results_file_is_named_left_out_and_rewritten_by_a_rerun(
    emulator: EmulatorProcess, tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    workdir = tmp_path / "work"
    write_tickets(workdir, partitions=1, rows_per_partition=30, invalid_share=0.1, seed=3)
    spec = pipeline_spec(1)
    driver = make_driver(spec, emulator.openai_base_url, workdir, dagster_instance)
    [day] = days(1)
    assert driver.submit(day).success
    driver.collect_all(timeout_s=120, poll_s=0.1)
    layout = StorageLayout.for_workdir(workdir)
    results_path = layout.partition_path("results", PIPELINE, day)
    before = pl.read_parquet(results_path).sort("id")
    dead_before = pl.read_parquet(layout.partition_path("dead_letters", PIPELINE, day)).height
    assert before.height > 0 and dead_before > 0
    sent_before = read_openai_ledger(emulator.openai_base_url).lines_sent

    results_path.write_bytes(b"this is not parquet any more\n" * 40)

    dead = cli(
        "query", "--workdir", str(workdir), "--format", "csv", "SELECT count(*) AS n FROM dead_letters"
    )
    assert dead.returncode == 0, dead.stderr
    assert dead.stdout.splitlines()[1] == str(dead_before)
    assert f"results file {results_path}" in dead.stderr and f"partition '{day}'" in dead.stderr
    assert "Traceback" not in dead.stderr
    answered = cli("query", "--workdir", str(workdir), "--format", "csv", "SELECT count(*) AS n FROM results")
    assert answered.returncode == 0 and answered.stdout.splitlines()[1] == "0"

    report = cli("report", "--workdir", str(workdir), "--out", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    assert "Traceback" not in report.stderr and str(results_path) in report.stderr
    assert f"partition &#x27;{day}&#x27;" in (tmp_path / "report.html").read_text()

    rerun = driver.submit(day)
    assert rerun.success
    [submitted] = rerun.asset_materializations_for_node(f"{PIPELINE}__submission")
    assert submitted.metadata["items_submitted"].value == 0
    assert submitted.metadata["items_already_answered"].value == before.height
    assert read_openai_ledger(emulator.openai_base_url).lines_sent == sent_before
    after = pl.read_parquet(results_path).sort("id")
    assert after.select("id", "response", "request_hash", "job_id").equals(
        before.select("id", "response", "request_hash", "job_id")
    )
    assert pl.read_parquet(layout.partition_path("dead_letters", PIPELINE, day)).height == dead_before
    assert len(list(results_path.parent.glob(f"{results_path.name}.unreadable-*"))) == 1
    again = cli("query", "--workdir", str(workdir), "--format", "csv", "SELECT count(*) AS n FROM results")
    assert again.stdout.splitlines()[1] == str(before.height) and again.stderr == ""
