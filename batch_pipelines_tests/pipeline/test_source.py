from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from batch_pipelines.pipeline import parse_pipeline_spec
from batch_pipelines.pipeline.source import SourceError, csv_blocks, read_partition, split_partition
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.pipeline.specs import declaration

ROWS = [
    {"ticket_id": "a", "created_at": "2026-11-01T08:00:00", "subject": "s1", "body": "b1"},
    {"ticket_id": "b", "created_at": "2026-11-01T23:59:59", "subject": "s2", "body": "b2"},
    {"ticket_id": "c", "created_at": "2026-11-02T00:00:00", "subject": "s3", "body": "b3"},
]


def test_reads_one_day_from_csv_jsonl_and_parquet_globs(tmp_path: Path) -> None:
    frame = pl.DataFrame(ROWS)
    (tmp_path / "data").mkdir()
    frame.write_csv(tmp_path / "data" / "part1.csv")
    spec = parse_pipeline_spec(declaration(source={"path": "data/*.csv"}))
    assert spec.source.file_format == "csv"
    assert read_partition(spec, "2026-11-01", tmp_path).accepted["ticket_id"].to_list() == ["a", "b"]
    (tmp_path / "data" / "rows.jsonl").write_text("\n".join(json.dumps(row) for row in ROWS))
    spec = parse_pipeline_spec(declaration(source={"path": "data/*.jsonl"}))
    assert read_partition(spec, "2026-11-02", tmp_path).accepted["ticket_id"].to_list() == ["c"]
    frame.with_columns(pl.col("created_at").str.to_datetime()).write_parquet(
        tmp_path / "data" / "rows.parquet"
    )
    spec = parse_pipeline_spec(declaration())
    assert read_partition(spec, "2026-11-01", tmp_path).accepted.height == 2


def test_sql_source_and_static_partitions(tmp_path: Path) -> None:
    pl.DataFrame(ROWS).with_columns(region=pl.Series(["eu", "us", "eu"])).write_parquet(
        tmp_path / "t.parquet"
    )
    spec = parse_pipeline_spec(
        declaration(
            source={"sql": f"SELECT * FROM read_parquet('{tmp_path / 't.parquet'}')"},
            partitions={"static": {"column": "region", "keys": ["eu", "us"]}},
        )
    )
    assert read_partition(spec, "eu", tmp_path).accepted["ticket_id"].to_list() == ["a", "c"]


def test_bad_rows_go_to_rejects_with_the_reason_and_the_rest_proceed(tmp_path: Path) -> None:
    rows = [
        {"ticket_id": "a", "created_at": datetime(2026, 11, 1, 1), "subject": "s", "body": "b"},
        {"ticket_id": "dup", "created_at": datetime(2026, 11, 1, 2), "subject": "s", "body": "b"},
        {"ticket_id": "dup", "created_at": datetime(2026, 11, 1, 3), "subject": "s", "body": "b"},
        {"ticket_id": None, "created_at": datetime(2026, 11, 1, 4), "subject": "s", "body": "b"},
        {"ticket_id": "e", "created_at": datetime(2026, 11, 1, 5), "subject": "s", "body": None},
    ]
    (tmp_path / "data").mkdir()
    pl.DataFrame(rows).write_parquet(tmp_path / "data" / "x.parquet")
    partition = read_partition(parse_pipeline_spec(declaration()), "2026-11-01", tmp_path)
    assert partition.accepted["ticket_id"].to_list() == ["a"]
    reasons = dict(
        zip(partition.rejects["row_number"].to_list(), partition.rejects["reason"].to_list(), strict=True)
    )
    assert reasons == {
        1: "id is not unique in column 'ticket_id'",
        2: "id is not unique in column 'ticket_id'",
        3: "id column 'ticket_id' is null",
        4: "prompt column 'body' is null",
    }
    assert set(partition.rejects["partition_key"]) == {"2026-11-01"}


def test_missing_columns_and_files_fail_with_names(tmp_path: Path) -> None:
    spec = parse_pipeline_spec(declaration())
    with pytest.raises(SourceError, match=r"source\.path' matches no file"):
        read_partition(spec, "2026-11-01", tmp_path)
    (tmp_path / "data").mkdir()
    pl.DataFrame({"ticket_id": ["a"], "created_at": [datetime(2026, 11, 1)], "subject": ["s"]}).write_parquet(
        tmp_path / "data" / "x.parquet"
    )
    with pytest.raises(SourceError, match="no column\\(s\\) body"):
        read_partition(spec, "2026-11-01", tmp_path)


def test_ids_a_provider_cannot_take_are_rejected_not_fatal(tmp_path: Path) -> None:
    rows = [
        {"ticket_id": "ok_1", "created_at": datetime(2026, 11, 1, 1), "subject": "s", "body": "b"},
        {"ticket_id": "has.dot", "created_at": datetime(2026, 11, 1, 2), "subject": "s", "body": "b"},
    ]
    (tmp_path / "data").mkdir()
    pl.DataFrame(rows).write_parquet(tmp_path / "data" / "x.parquet")
    anthropic = parse_pipeline_spec(declaration(provider="anthropic", model="claude-haiku-4-5"))
    partition = read_partition(anthropic, "2026-11-01", tmp_path)
    assert partition.accepted["ticket_id"].to_list() == ["ok_1"]
    assert partition.rejects["reason"].to_list() == [
        "id is not usable by anthropic (1-64 letters, digits, '_' or '-')"
    ]
    assert read_partition(parse_pipeline_spec(declaration()), "2026-11-01", tmp_path).accepted.height == 2


def test_csv_blocks_end_on_record_boundaries_even_inside_quoted_newlines(tmp_path: Path) -> None:
    records = [f'r{index},"line one\nline ""two"", {index}",{"x" * (index % 7)}\n' for index in range(200)]
    path = tmp_path / "quoted.csv"
    path.write_text("id,text,pad\n" + "".join(records))
    blocks = list(csv_blocks(path, block_bytes=64))
    assert len(blocks) > 10
    assert b"".join(blocks).decode() == "".join(records)
    parsed = [pl.read_csv(block, has_header=False, new_columns=["id", "text", "pad"]) for block in blocks]
    assert pl.concat(parsed)["text"].to_list() == [f'line one\nline "two", {index}' for index in range(200)]


def test_a_partition_is_written_to_its_files_a_batch_at_a_time(tmp_path: Path) -> None:
    rows = [*ROWS, {"ticket_id": "a", "created_at": "2026-11-01T09:00:00", "subject": "s4", "body": "b4"}]
    (tmp_path / "data").mkdir()
    pl.DataFrame(rows).write_csv(tmp_path / "data" / "rows.csv")
    spec = parse_pipeline_spec(declaration(source={"path": "data/*.csv"}))
    layout = StorageLayout.for_workdir(tmp_path)
    with (
        layout.partition_writer("inputs", spec.name, "2026-11-01") as inputs,
        layout.partition_writer("rejects", spec.name, "2026-11-01") as rejects,
    ):
        for batch in split_partition(spec, "2026-11-01", tmp_path):
            inputs.write(batch.accepted)
            rejects.write(batch.rejects)
    assert (inputs.rows, rejects.rows) == (1, 2)
    assert pl.read_parquet(inputs.location)["ticket_id"].to_list() == ["b"]
    assert pl.read_parquet(rejects.location)["row_number"].to_list() == [0, 2]
    assert not list(tmp_path.glob(".partition-staging-*"))  # the staged rows are gone
    assert sorted(path.name for path in (tmp_path / "inputs" / spec.name).iterdir()) == ["2026-11-01.parquet"]


def test_only_bytes_that_are_not_utf8_reject_a_csv_row_and_a_genuine_replacement_character_is_kept(
    tmp_path: Path,
) -> None:
    """Text that went through a lossy decode upstream holds U+FFFD; that is data, not a broken file."""
    genuine = "Caf\ufffd order".encode()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_bytes(
        b"ticket_id,created_at,subject,body\n"
        + b"kept,2026-11-01T01:00:00,"
        + genuine
        + b",b\n"
        + b"bad,2026-11-01T02:00:00,Caf\xe9 \xff,b\n"
    )
    csv_partition = read_partition(
        parse_pipeline_spec(declaration(source={"path": "data/*.csv"})), "2026-11-01", tmp_path
    )
    assert csv_partition.accepted["subject"].to_list() == ["Caf\ufffd order"]
    assert csv_partition.rejects["reason"].to_list() == [
        "column 'subject' holds bytes that are not valid UTF-8 (file t.csv, line 3)"
    ]
    pl.DataFrame(
        {"ticket_id": ["p"], "created_at": [datetime(2026, 11, 1, 1)], "subject": ["\ufffd"], "body": ["b"]}
    ).write_parquet(tmp_path / "data" / "p.parquet")
    parquet_partition = read_partition(parse_pipeline_spec(declaration()), "2026-11-01", tmp_path)
    assert parquet_partition.accepted["subject"].to_list() == ["\ufffd"]
    assert parquet_partition.rejects.height == 0


def test_an_id_repeated_in_another_file_is_rejected_in_both(tmp_path: Path) -> None:
    first = [
        {"ticket_id": "a", "created_at": "2026-11-01T01:00:00", "subject": "s", "body": "b"},
        {"ticket_id": "x", "created_at": "2026-11-01T02:00:00", "subject": "s", "body": "b"},
    ]
    second = [
        {"ticket_id": "x", "created_at": "2026-11-01T03:00:00", "subject": "s", "body": "b"},
        {"ticket_id": "c", "created_at": "2026-11-01T04:00:00", "subject": "s", "body": "b"},
    ]
    (tmp_path / "data").mkdir()
    for name, rows in (("1", first), ("2", second)):
        frame = pl.DataFrame(rows)
        frame.write_csv(tmp_path / "data" / f"{name}.csv")
        frame.with_columns(pl.col("created_at").str.to_datetime()).write_parquet(
            tmp_path / "data" / f"{name}.parquet"
        )
    for spec in (
        parse_pipeline_spec(declaration(source={"path": "data/*.csv"})),
        parse_pipeline_spec(declaration()),
    ):
        partition = read_partition(spec, "2026-11-01", tmp_path)
        assert partition.accepted["ticket_id"].to_list() == ["a", "c"]
        assert partition.rejects["row_number"].to_list() == [1, 2]
        assert partition.rejects["reason"].to_list() == ["id is not unique in column 'ticket_id'"] * 2
    assert not list(tmp_path.glob(".partition-*"))  # no scratch folder left behind


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "parquet"])
def test_rows_whose_date_cannot_be_parsed_are_rejected_naming_the_column(
    tmp_path: Path, file_format: str
) -> None:
    rows = [
        *ROWS,
        {"ticket_id": "y", "created_at": "yesterday", "subject": "s4", "body": "b4"},
        {"ticket_id": "n", "created_at": "not a date", "subject": "s5", "body": "b5"},
        {"ticket_id": "z", "created_at": None, "subject": "s6", "body": "b6"},
    ]
    (tmp_path / "data").mkdir()
    frame = pl.DataFrame(rows, schema={name: pl.String for name in rows[0]})
    path = tmp_path / "data" / f"tickets.{file_format}"
    if file_format == "csv":
        frame.write_csv(path)
    elif file_format == "jsonl":
        frame.write_ndjson(path)
    else:
        frame.write_parquet(path)
    spec = parse_pipeline_spec(declaration(source={"path": f"data/*.{file_format}"}))

    for day, accepted in (("2026-11-01", ["a", "b"]), ("2026-11-02", ["c"])):
        partition = read_partition(spec, day, tmp_path)
        assert partition.accepted["ticket_id"].to_list() == accepted
        assert dict(zip(partition.rejects["id"], partition.rejects["reason"], strict=True)) == {
            "y": "partition column 'created_at' holds 'yesterday', which is not a date or time: "
            "the row belongs to no daily partition",
            "n": "partition column 'created_at' holds 'not a date', which is not a date or time: "
            "the row belongs to no daily partition",
            "z": "partition column 'created_at' is null: the row belongs to no daily partition",
        }
        assert set(partition.rejects["partition_key"]) == {day}
