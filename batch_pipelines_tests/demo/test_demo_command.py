"""`batch-pipelines demo` end to end on a small dataset: emulator, Dagster runs, DuckDB summary."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.cli import main


def test_demo_materializes_every_partition_through_dagster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "DAGSTER_HOME", str(tmp_path / "unused")
    )  # restored after the test; the demo sets its own
    workdir = tmp_path / "work"

    assert main(["demo", "--workdir", str(workdir), "--rows-per-day", "4"]) == 0
    output = capsys.readouterr().out
    assert "Per partition" in output and "Categories" in output and "Cost" in output

    inputs = pl.read_parquet(workdir / "inputs" / "support_tickets" / "*.parquet")
    assert (
        main(
            [
                "query",
                "--workdir",
                str(workdir),
                "--format",
                "csv",
                "SELECT count(*), count(DISTINCT id), count(DISTINCT partition_key) FROM results",
            ]
        )
        == 0
    )
    counts = capsys.readouterr().out.splitlines()[1]
    assert counts == f"{inputs.height},{inputs.height},7"
    assert (
        main(
            [
                "query",
                "--workdir",
                str(workdir),
                "--format",
                "csv",
                "SELECT count(*) FROM jobs WHERE status = 'completed'",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1] == "7"

    with dg.DagsterInstance.local_temp(tempdir=str(workdir / "dagster_home")) as instance:
        results_runs = instance.get_runs(dg.RunsFilter(job_name="support_tickets_results_job"))
        assert len(results_runs) == 7
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in results_runs)
