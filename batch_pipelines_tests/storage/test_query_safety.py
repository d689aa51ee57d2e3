"""`batch-pipelines query` cannot write: no statement creates, changes or deletes a file; the views read
only the files runs recorded (a stray file is ignored, and `doctor` names it); `query ""` is an error."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.cli_process import run_cli
from batch_pipelines_tests.storage.test_views_and_query import result_rows

PIPELINE, DAY = "support_tickets", "2026-11-01"


cli = run_cli


@pytest.fixture
def layout(tmp_path: Path) -> StorageLayout:
    layout = StorageLayout.for_workdir(tmp_path / "work")
    layout.write_partition(
        result_rows(PIPELINE, DAY, [f"t{i}" for i in range(370)]), "results", PIPELINE, DAY
    )
    return layout


def count_results(layout: StorageLayout) -> str:
    answer = cli("query", "--workdir", str(layout.workdir), "--format", "csv", "SELECT count(*) FROM results")
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.splitlines()[1]


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM results WHERE false) TO '{partition}' (FORMAT parquet)",
        "COPY (SELECT * FROM results LIMIT 1) TO '{folder}/evil.parquet' (FORMAT parquet)",
        "COPY results TO '{workdir}/elsewhere.csv'",
        "EXPORT DATABASE '{workdir}/exported'",
        "ATTACH '{workdir}/new.duckdb' AS other",
        "SELECT * FROM read_parquet('{partition}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "CREATE TABLE copied AS SELECT * FROM results",
        "DROP VIEW results",
    ],
)
def test_no_statement_can_write_or_read_a_file(
    layout: StorageLayout, sql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    partition = layout.partition_path("results", PIPELINE, DAY)
    files_before = sorted(path.relative_to(layout.workdir) for path in layout.workdir.rglob("*"))
    statement = sql.format(partition=partition, folder=partition.parent, workdir=layout.workdir)
    assert main(["query", "--workdir", str(layout.workdir), statement]) == 1
    assert capsys.readouterr().err.startswith("query failed:")
    assert pl.read_parquet(partition).height == 370
    files_after = sorted(path.relative_to(layout.workdir) for path in layout.workdir.rglob("*"))
    assert files_after == files_before
    assert (
        main(["query", "--workdir", str(layout.workdir), "--format", "csv", "SELECT count(*) FROM results"])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1] == "370"


def test_the_issue_copy_fails_as_a_command_without_a_traceback(layout: StorageLayout) -> None:
    partition = layout.partition_path("results", PIPELINE, DAY)
    sql = f"COPY (SELECT * FROM results WHERE false) TO '{partition}' (FORMAT parquet)"
    answer = cli("query", "--workdir", str(layout.workdir), sql)
    assert answer.returncode == 1
    assert answer.stderr.startswith("query failed: Permission Error") and "Traceback" not in answer.stderr
    assert pl.read_parquet(partition).height == 370


def test_a_stray_file_in_the_results_tree_is_ignored_and_doctor_names_it(layout: StorageLayout) -> None:
    stray = layout.partition_path("results", PIPELINE, DAY).with_name("evil.parquet")
    result_rows(PIPELINE, DAY, ["t0"]).write_parquet(stray)
    assert count_results(layout) == "370"

    doctor = cli("doctor", "--workdir", str(layout.workdir))
    assert doctor.returncode == 1
    assert doctor.stdout.splitlines() == [
        f"stray: {stray} is in the results folder but no run wrote it; the results view ignores it "
        "(delete it, or move it out of the folder)"
    ]
    stray.unlink()
    healthy = cli("doctor", "--workdir", str(layout.workdir))
    assert healthy.returncode == 0 and "no stray or unreadable files" in healthy.stdout


def test_doctor_names_an_unreadable_recorded_file(layout: StorageLayout) -> None:
    partition = layout.partition_path("results", PIPELINE, DAY)
    partition.write_bytes(b"PAR1 truncated")
    doctor = cli("doctor", "--workdir", str(layout.workdir))
    assert doctor.returncode == 1
    [line] = doctor.stdout.splitlines()
    assert line.startswith(f"unreadable: results file {partition} (pipeline '{PIPELINE}', partition '{DAY}')")


def test_a_results_root_outside_the_workdir_is_found_by_query(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    elsewhere = tmp_path / "shared" / "answers"
    layout = StorageLayout.for_workdir(workdir, results_root=elsewhere)
    layout.write_partition(result_rows("tickets", DAY, ["a", "b"]), "results", "tickets", DAY)
    assert (elsewhere / "tickets" / f"{DAY}.parquet").exists()
    assert count_results(StorageLayout.for_workdir(workdir)) == "2"


def test_empty_sql_is_refused_with_a_message(layout: StorageLayout) -> None:
    for sql in ("", "   "):
        answer = cli("query", "--workdir", str(layout.workdir), sql)
        assert answer.returncode == 2
        assert (
            answer.stderr
            == 'error: the SQL is empty; give one statement, e.g. "SELECT * FROM results LIMIT 5"\n'
        )
