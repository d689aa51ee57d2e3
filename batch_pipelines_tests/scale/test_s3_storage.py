"""Inputs, rejects, results and dead letters on S3 (moto's server) through dagster-aws's S3Resource, and
DuckDB querying them there: the same pipeline as the local default, moved by resource configuration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import pytest
from dagster_aws.s3 import S3Resource

from batch_pipelines.components import BatchEngineResource, DuckDBResource, key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.s3_tables import S3Location, S3Tables
from batch_pipelines_tests.components.conftest import (
    ROWS_PER_DAY,
    PipelineHarness,
    ticket_spec,
    write_tickets,
)

pytestmark = pytest.mark.usefixtures("aws_credentials")


@pytest.fixture
def bucket(aws_endpoint: str, aws_credentials: None) -> str:
    name = f"bp-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=aws_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home")) as local:
        yield local


def _objects(endpoint: str, bucket: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_partition_lives_on_s3_and_duckdb_queries_it_there(
    tmp_path: Path,
    emulator: EmulatorProcess,
    aws_endpoint: str,
    bucket: str,
    instance: dg.DagsterInstance,
) -> None:
    workdir = tmp_path / "work"
    write_tickets(workdir)
    s3 = S3Resource(endpoint_url=aws_endpoint, region_name="us-east-1")
    storage_url = f"s3://{bucket}/prod"
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(workdir),
        storage_url=storage_url,
        s3=s3,
    )
    harness = PipelineHarness(spec=ticket_spec(), engine=engine, instance=instance, workdir=workdir)

    submitted = harness.submit("2026-11-02")
    assert submitted.success
    [input_event] = [
        e for e in submitted.get_asset_materialization_events() if e.asset_key.path[-1] == "input"
    ]
    assert (
        input_event.materialization.metadata["path"].value
        == f"{storage_url}/inputs/tickets/2026-11-02.parquet"
    )
    [request] = harness.wait_for_run_requests()
    assert harness.collect(request).success

    tables = [key for key in _objects(aws_endpoint, bucket) if not key.startswith("prod/batch_files/")]
    assert tables == [
        f"prod/{table}/tickets/2026-11-02.parquet"
        for table in ("dead_letters", "inputs", "rejects", "request_keys", "results")
    ]  # (the provider batch's files beside them: test_batch_files_on_s3.py)
    assert not (workdir / "results").exists() and not (workdir / "inputs").exists()

    duckdb = DuckDBResource(workdir=str(workdir), storage_url=storage_url, s3=s3)
    with duckdb.get_connection() as connection:
        answered = connection.execute(
            "SELECT count(*), count(DISTINCT id) FROM results WHERE partition_key = '2026-11-02'"
        ).fetchone()
        dead = connection.execute("SELECT count(*) FROM dead_letters").fetchone()
    assert answered == (ROWS_PER_DAY, ROWS_PER_DAY)
    assert dead == (0,)

    # Submitting the answered partition again reads the results back from S3 and sends nothing.
    again = harness.submit("2026-11-02")
    [submission] = [
        e for e in again.get_asset_materialization_events() if e.asset_key.path[-1] == "submission"
    ]
    assert submission.materialization.metadata["items_submitted"].value == 0


def test_views_are_empty_with_their_columns_before_anything_is_written(
    tmp_path: Path, aws_endpoint: str, bucket: str
) -> None:
    s3 = S3Resource(endpoint_url=aws_endpoint, region_name="us-east-1")
    duckdb = DuckDBResource(workdir=str(tmp_path), storage_url=f"s3://{bucket}/empty", s3=s3)
    with duckdb.get_connection() as connection:
        assert connection.execute("SELECT count(*) FROM results").fetchone() == (0,)
        assert "id" in [column[0] for column in connection.execute("DESCRIBE rejects").fetchall()]


def test_partitions_round_trip_and_missing_ones_read_empty(aws_endpoint: str, bucket: str) -> None:
    tables = S3Tables(
        client=boto3.client("s3", endpoint_url=aws_endpoint), location=S3Location.parse(f"s3://{bucket}/p")
    )
    layout = StorageLayout.for_workdir(Path("/nonexistent"), remote=tables)
    frame = pl.DataFrame({"id": ["a", "b"], "transient": [True, False]})
    assert layout.write_partition(frame, "dead_letters", "tickets", "2026-11-01") == (
        f"s3://{bucket}/p/dead_letters/tickets/2026-11-01.parquet"
    )
    assert layout.read_partition("dead_letters", "tickets", "2026-11-01").equals(frame)
    assert layout.partition_keys("dead_letters", "tickets") == ["2026-11-01"]
    assert layout.partition_exists("dead_letters", "tickets", "2026-11-01")
    assert not layout.partition_exists("dead_letters", "tickets", "2026-11-0")  # no prefix matches
    empty = layout.read_partition("results", "tickets", "2026-11-01", schema={"id": pl.String()})
    assert empty.height == 0 and empty.columns == ["id"]
    with pytest.raises(FileNotFoundError, match="2026-11-05"):
        layout.read_partition("results", "tickets", "2026-11-05")
    with pytest.raises(ValueError, match="s3://bucket"):
        S3Location.parse("/local/path")


def test_a_partition_file_is_downloaded_for_readers_that_take_a_path(
    tmp_path: Path, aws_endpoint: str, bucket: str
) -> None:
    tables = S3Tables(
        client=boto3.client("s3", endpoint_url=aws_endpoint), location=S3Location.parse(f"s3://{bucket}/p")
    )
    layout = StorageLayout.for_workdir(tmp_path / "work", remote=tables)
    frame = pl.DataFrame({"id": ["a", "b"]})
    layout.write_partition(frame, "results", "tickets", "2026-11-01")

    copy = layout.local_partition_file("results", "tickets", "2026-11-01", tmp_path)
    assert copy is not None and copy.parent == tmp_path
    assert pl.read_parquet(copy).equals(frame)
    assert layout.local_partition_file("results", "tickets", "2026-11-02", tmp_path) is None


def test_duckdb_reads_the_s3_server_named_in_the_environment(
    tmp_path: Path, aws_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment that points boto3 at an S3-compatible server with $AWS_ENDPOINT_URL_S3, and gives the
    resource no S3Resource, gets its tables queried on that server, not on AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    tables = S3Tables(client=boto3.client("s3"), location=S3Location.parse(f"s3://{bucket}/env"))
    layout = StorageLayout.for_workdir(tmp_path, remote=tables)
    layout.write_partition(pl.DataFrame({"id": ["a", "b", "c"]}), "rejects", "tickets", "2026-11-01")

    duckdb = DuckDBResource(workdir=str(tmp_path), storage_url=f"s3://{bucket}/env")
    with duckdb.get_connection() as connection:
        assert connection.execute("SELECT count(*) FROM rejects").fetchone() == (3,)
