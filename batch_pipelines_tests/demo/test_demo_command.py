"""`batch-pipelines demo` end to end on a small dataset: emulator, Dagster runs, DuckDB summary."""

from __future__ import annotations

import stat
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.demo.command import DEMO_API_KEY, demo_lock


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

    # Private: every prompt and answer is in there. The key reached Dagster by name only.
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    tables = [*workdir.glob("inputs/**/*.parquet"), *workdir.glob("results/**/*.parquet")]
    assert len(tables) == 14
    assert {stat.S_IMODE(path.stat().st_mode) for path in [workdir / "batches.db", *tables]} == {0o600}
    leaked = [p for p in workdir.rglob("*") if p.is_file() and DEMO_API_KEY.encode() in p.read_bytes()]
    assert leaked == []

    with dg.DagsterInstance.local_temp(tempdir=str(workdir / "dagster_home")) as instance:
        results_runs = instance.get_runs(dg.RunsFilter(job_name="support_tickets_results_job"))
        assert len(results_runs) == 7
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in results_runs)


def test_a_second_demo_on_the_same_folder_is_refused_while_the_first_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with demo_lock(workdir):
        assert main(["demo", "--workdir", str(workdir), "--rows-per-day", "4"]) == 1
    assert capsys.readouterr().err == f"error: another demo is running on {workdir}\n"
