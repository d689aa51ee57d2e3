"""`batch-pipelines query`, `status` and `report` on another machine, pointed at the shared deployment by
configuration: the BatchStore on PostgreSQL and the tables on S3 (moto's server). `query` stays
read-only and confined to the tables there, as it is over a local working folder."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import pytest
from dagster_aws.s3 import S3Resource

from batch_pipelines.cli import main
from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.storage.confined_s3 import ConfinedReadOnlyS3
from batch_pipelines.storage.s3_tables import duckdb_filesystem
from batch_pipelines_tests.components.conftest import (
    ROWS_PER_DAY,
    PipelineHarness,
    ticket_spec,
    write_tickets,
)

PARTITION = "2026-11-02"


@dataclass(frozen=True)
class SharedDeployment:
    bucket: str
    storage_url: str
    store_url: str
    endpoint: str


@pytest.fixture
def deployment(
    tmp_path: Path,
    emulator: EmulatorProcess,
    postgres_url: str,
    aws_endpoint: str,
    aws_credentials: None,
) -> Iterator[SharedDeployment]:
    """One partition submitted and collected by Dagster runs writing to PostgreSQL and S3."""
    bucket = f"bp-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=aws_endpoint).create_bucket(Bucket=bucket)
    # A neighbour the query must not read, in the same bucket.
    secret = io.BytesIO()
    pl.DataFrame({"secret": ["do not read"]}).write_parquet(secret)
    boto3.client("s3", endpoint_url=aws_endpoint).put_object(
        Bucket=bucket, Key="private/secret.parquet", Body=secret.getvalue()
    )
    shared = SharedDeployment(bucket, f"s3://{bucket}/prod", postgres_url, aws_endpoint)
    runs_workdir = tmp_path / "run_machine"
    write_tickets(runs_workdir)
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(runs_workdir),
        store_url=shared.store_url,
        storage_url=shared.storage_url,
        s3=S3Resource(endpoint_url=aws_endpoint, region_name="us-east-1"),
    )
    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home")) as instance:
        harness = PipelineHarness(spec=ticket_spec(), engine=engine, instance=instance, workdir=runs_workdir)
        assert harness.submit(PARTITION).success
        [request] = harness.wait_for_run_requests()
        assert harness.collect(request).success
    yield shared


@dataclass(frozen=True)
class Answer:
    code: int
    out: str
    err: str


Cli = Callable[..., Answer]


@pytest.fixture
def cli(
    tmp_path: Path,
    deployment: SharedDeployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    """The CLI on a machine with an empty working folder, configured only through the environment."""
    monkeypatch.setenv("BATCH_PIPELINES_HOME", str(tmp_path / "laptop"))
    monkeypatch.setenv("BATCH_PIPELINES_STORE_URL", deployment.store_url)
    monkeypatch.setenv("BATCH_PIPELINES_STORAGE_URL", deployment.storage_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", deployment.endpoint)

    def run(*argv: str) -> Answer:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Answer(code, captured.out, captured.err)

    yield run


def test_query_status_and_report_read_the_shared_store_and_tables(
    cli: Cli,
    tmp_path: Path,
) -> None:
    answered = cli(
        "query",
        "--format",
        "json",
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM results WHERE partition_key = '2026-11-02'",
    )
    assert answered.code == 0, answered.err
    assert json.loads(answered.out) == [{"n": ROWS_PER_DAY, "ids": ROWS_PER_DAY}]

    jobs = cli("query", "--format", "json", "SELECT partition_key, status, total FROM jobs")
    assert jobs.code == 0, jobs.err
    expected = {"partition_key": PARTITION, "status": "completed", "total": ROWS_PER_DAY}
    assert json.loads(jobs.out) == [expected]
    assert not (tmp_path / "laptop" / "batches.db").exists()

    status = cli("status", "--all", "--json")
    assert status.code == 0, status.err
    [job] = json.loads(status.out)
    assert job["status"] == "completed" and job["id"].startswith(f"tickets.{PARTITION}.")

    out = tmp_path / "report" / "report.html"
    report = cli("report", "--out", str(out))
    assert report.code == 0, report.err
    page = out.read_text()
    assert PARTITION in page and "tables s3://" in page


def test_query_on_s3_cannot_write_or_read_beyond_the_tables(
    cli: Cli,
    deployment: SharedDeployment,
    tmp_path: Path,
) -> None:
    prod = f"s3://{deployment.bucket}/prod"
    attempts = {
        f"SELECT * FROM read_parquet('s3://{deployment.bucket}/private/secret.parquet')": "Permission Error",
        f"SELECT * FROM read_parquet('{prod}/results/../../private/secret.parquet')": "Permission Error",
        f"COPY (SELECT 1 AS x) TO '{prod}/results/tickets/written.csv'": "may only read",
        f"COPY (SELECT 1 AS x) TO '{tmp_path / 'written.csv'}'": "Permission Error",
        "SET enable_external_access = true": "configuration has been locked",
    }
    for sql, refusal in attempts.items():
        answer = cli("query", sql)
        assert answer.code == 1, (sql, answer.out)
        assert refusal in answer.err, (sql, answer.err)
        assert "do not read" not in answer.out
    listed = boto3.client("s3", endpoint_url=deployment.endpoint).list_objects_v2(
        Bucket=deployment.bucket, Prefix="prod/results/"
    )
    assert [item["Key"] for item in listed["Contents"]] == [f"prod/results/tickets/{PARTITION}.parquet"]
    assert not (tmp_path / "written.csv").exists()


def test_a_password_on_the_command_line_is_refused(
    cli: Cli,
) -> None:
    answer = cli("query", "--store-url", "postgresql://batch:hunter2@127.0.0.1/db", "SELECT 1")
    assert answer.code == 1 and "PGPASSWORD" in answer.err
    assert "hunter2" not in answer.err + answer.out


def test_the_confined_filesystem_reads_only_under_its_prefixes(deployment: SharedDeployment) -> None:
    inner = duckdb_filesystem(endpoint_url=deployment.endpoint, region="us-east-1")
    confined = ConfinedReadOnlyS3(inner, [f"{deployment.bucket}/prod/results"])
    prod = f"s3://{deployment.bucket}/prod/results"
    written = f"{deployment.bucket}/prod/results/tickets/{PARTITION}.parquet"
    assert confined.glob(f"{prod}/*/*.parquet") == [written]
    with confined.open(f"{prod}/tickets/{PARTITION}.parquet") as handle:
        assert pl.read_parquet(handle).height == ROWS_PER_DAY
    for path in (f"{prod}/../../private/secret.parquet", f"s3://{deployment.bucket}/private/secret.parquet"):
        with pytest.raises(PermissionError):
            confined.open(path)
    with pytest.raises(PermissionError, match="may only read"):
        confined.open(f"{prod}/tickets/new.parquet", "wb")
    with pytest.raises(NotImplementedError):
        confined.rm(f"{prod}/tickets/{PARTITION}.parquet")
