from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import write_parquet_atomic
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA, RESULTS_SCHEMA
from batch_pipelines.storage.views import create_views


def result_rows(pipeline: str, partition: str, ids: list[str], **extra: list[object]) -> pl.DataFrame:
    base = {
        "pipeline": [pipeline] * len(ids),
        "partition_key": [partition] * len(ids),
        "id": ids,
        "response": ['{"label": "x"}'] * len(ids),
        "input_tokens": [10] * len(ids),
        "output_tokens": [2] * len(ids),
        "cost_usd": [0.001] * len(ids),
        "attempt": [1] * len(ids),
        "provider_batch_id": ["batch_1"] * len(ids),
        "job_id": ["job"] * len(ids),
        "request_hash": ["h"] * len(ids),
        "spec_version": ["v"] * len(ids),
    }
    return pl.DataFrame({**base, **extra}, schema_overrides=RESULTS_SCHEMA)


@pytest.fixture
def layout(tmp_path: Path) -> StorageLayout:
    layout = StorageLayout.for_workdir(tmp_path)
    write_parquet_atomic(
        result_rows("tickets", "2026-11-01", ["a", "b"], label=["x", "y"]),
        layout.partition_path("results", "tickets", "2026-11-01"),
    )
    write_parquet_atomic(
        result_rows("tickets", "2026-11-02", ["c"], label=["x"]),
        layout.partition_path("results", "tickets", "2026-11-02"),
    )
    write_parquet_atomic(result_rows("emails", "eu", ["m"]), layout.partition_path("results", "emails", "eu"))
    dead = pl.DataFrame(
        [
            {
                "pipeline": "tickets",
                "partition_key": "2026-11-01",
                "id": "z",
                "error_type": "invalid_request",
                "error_message": "bad",
                "transient": False,
                "attempt": 1,
                "job_id": "job",
                "request_hash": "h",
            }
        ],
        schema=DEAD_LETTERS_SCHEMA,
    )
    write_parquet_atomic(dead, layout.partition_path("dead_letters", "tickets", "2026-11-01"))
    return layout


def test_views_cover_every_pipeline_and_partition(layout: StorageLayout) -> None:
    with duckdb.connect() as connection:
        create_views(connection, layout)
        counts = connection.execute(
            "SELECT pipeline, count(*) FROM results GROUP BY ALL ORDER BY 1"
        ).fetchall()
        assert counts == [("emails", 1), ("tickets", 3)]
        labels = connection.execute(
            "SELECT id, label FROM results WHERE pipeline = 'tickets' ORDER BY id"
        ).fetchall()
        assert labels == [("a", "x"), ("b", "y"), ("c", "x")]
        dead = connection.execute(
            "SELECT pipeline, partition_key, id, error_type, error_message FROM dead_letters"
        )
        assert dead.fetchall() == [("tickets", "2026-11-01", "z", "invalid_request", "bad")]


def test_views_of_an_empty_working_folder_have_the_columns(tmp_path: Path) -> None:
    with duckdb.connect() as connection:
        create_views(connection, StorageLayout.for_workdir(tmp_path))
        for view, column in (
            ("results", "cost_usd"),
            ("dead_letters", "error_type"),
            ("jobs", "status"),
            ("costs", "saved_usd"),
            ("rejects", "reason"),
        ):
            assert connection.execute(f"SELECT count({column}) FROM {view}").fetchone() == (0,)


def run_query(
    capsys: pytest.CaptureFixture[str], workdir: Path, sql: str, *options: str
) -> tuple[int, str, str]:
    exit_code = main(["query", "--workdir", str(workdir), *options, sql])
    captured = capsys.readouterr()
    return exit_code, captured.out, captured.err


def test_query_command_prints_table_csv_and_json(
    layout: StorageLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT partition_key, count(*) AS n FROM results WHERE pipeline = 'tickets' GROUP BY 1 ORDER BY 1"
    code, out, _ = run_query(capsys, layout.workdir, sql)
    assert code == 0
    assert out.splitlines()[0].split() == ["partition_key", "n"]
    assert "2026-11-01     2" in out and "(2 rows)" in out
    code, out, _ = run_query(capsys, layout.workdir, sql, "--format", "csv")
    assert list(csv.reader(io.StringIO(out))) == [
        ["partition_key", "n"],
        ["2026-11-01", "2"],
        ["2026-11-02", "1"],
    ]
    code, out, _ = run_query(capsys, layout.workdir, sql, "--format", "json")
    assert json.loads(out) == [
        {"partition_key": "2026-11-01", "n": 2},
        {"partition_key": "2026-11-02", "n": 1},
    ]


@pytest.mark.parametrize(
    "sql", ["CREATE TABLE t AS SELECT 1", "DROP VIEW results", "INSERT INTO results SELECT * FROM results"]
)
def test_query_command_is_read_only(
    layout: StorageLayout, capsys: pytest.CaptureFixture[str], sql: str
) -> None:
    code, _, err = run_query(capsys, layout.workdir, sql)
    assert code == 1
    assert "query failed" in err
    code, out, _ = run_query(capsys, layout.workdir, "SELECT count(*) AS n FROM results", "--format", "csv")
    assert out.splitlines()[1] == "4"


def test_query_command_reports_sql_errors(layout: StorageLayout, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_query(capsys, layout.workdir, "SELECT nope FROM results")
    assert code == 1
    assert "nope" in err
