"""With the tables on S3, each provider batch's input and output file is kept beside them too (through
the S3Resource's client), named by job, attempt and chunk: what was sent and what came back, line for line."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import (
    ROWS_PER_DAY,
    PipelineHarness,
    ticket_spec,
    write_tickets,
)

pytestmark = pytest.mark.usefixtures("aws_credentials")

API_KEY = "sk-batch-files-3b9e1c7d5a"


def test_batch_input_and_output_files_are_kept_on_s3(
    tmp_path: Path, emulator: EmulatorProcess, aws_endpoint: str
) -> None:
    bucket = f"bp-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=aws_endpoint)
    s3.create_bucket(Bucket=bucket)
    workdir = tmp_path / "work"
    write_tickets(workdir)
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", API_KEY),
        base_url=emulator.openai_base_url,
        workdir=str(workdir),
        storage_url=f"s3://{bucket}/prod",
        s3=S3Resource(endpoint_url=aws_endpoint, region_name="us-east-1"),
    )
    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home")) as instance:
        harness = PipelineHarness(spec=ticket_spec(), engine=engine, instance=instance, workdir=workdir)
        assert harness.submit("2026-11-02").success
        [request] = harness.wait_for_run_requests()
        assert harness.collect(request).success

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="prod/batch_files/")
    keys = sorted(item["Key"] for item in listed["Contents"])
    [job_folder] = {key.rsplit("/", 1)[0] for key in keys}
    assert job_folder.startswith("prod/batch_files/tickets.2026-11-02.")
    assert [key.rsplit("/", 1)[1] for key in keys] == [
        "attempt1-chunk00000.input.jsonl",
        "attempt1-chunk00000.output.jsonl",
    ]

    def lines(key: str) -> list[dict[str, object]]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert API_KEY.encode() not in body
        return [json.loads(line) for line in body.splitlines()]

    sent = lines(keys[0])
    answered = lines(keys[1])
    assert len(sent) == len(answered) == ROWS_PER_DAY
    assert {line["custom_id"] for line in sent} == {line["custom_id"] for line in answered}
    assert all(line["url"] == "/v1/chat/completions" for line in sent)
    assert all(line["response"]["status_code"] == 200 for line in answered)  # type: ignore[index]
