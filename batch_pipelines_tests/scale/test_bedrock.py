"""Bedrock batch inference end to end: the provider writes JSONL to S3 (moto's server), creates a model
invocation job on the emulator's Bedrock control plane, which reads that input from S3 and writes
`.jsonl.out` and `manifest.json.out` back; the engine collects the results from there."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import anyio
import boto3
import pytest

from batch_pipelines import BatchManager, BatchStatus
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchJob, BatchRequest
from batch_pipelines.providers.bedrock import BedrockProvider
from batch_pipelines_tests.conftest import TEST_TIME_SCALE

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("aws_credentials")]

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
ROLE = "arn:aws:iam::123456789012:role/bedrock-batch"


@pytest.fixture
def bedrock_emulator(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    """The emulator, its S3 client pointed at moto the way boto3 is configured anywhere."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_endpoint)
    with EmulatorProcess(time_scale=TEST_TIME_SCALE, seed=7) as running:
        yield running


@pytest.fixture
def bucket(aws_endpoint: str, aws_credentials: None) -> str:
    name = f"bp-bedrock-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=aws_endpoint).create_bucket(Bucket=name)
    return name


def _provider(emulator: EmulatorProcess, bucket: str) -> BedrockProvider:
    return BedrockProvider(MODEL, role_arn=ROLE, s3_uri=f"s3://{bucket}/batches", base_url=emulator.url)


def _requests(count: int) -> list[BatchRequest]:
    return [
        BatchRequest(id=f"r{i:04d}", messages=[{"role": "user", "content": f"Summarise contract {i}"}])
        for i in range(count)
    ]


async def _wait_until_ended(manager: BatchManager, job_id: str, timeout_s: float = 30) -> BatchJob:
    with anyio.move_on_after(timeout_s):
        while True:
            job = await manager.refresh(job_id)
            if job.status.is_terminal and job.detail != "cancelling":
                return job
            await anyio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {await manager.get_job(job_id)}")


def _keys(endpoint: str, bucket: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def test_a_job_goes_through_s3_and_a_model_invocation_job(
    bedrock_emulator: EmulatorProcess, aws_endpoint: str, bucket: str
) -> None:
    requests = _requests(120)
    broken = BatchRequest(id="bad", messages=[{"role": "user", "content": "x"}], params={"max_tokens": 0})
    manager = BatchManager(_provider(bedrock_emulator, bucket))
    job = await manager.submit([*requests, broken], job_id="contracts.2026-11-22")
    assert job.status in (BatchStatus.PENDING, BatchStatus.PROCESSING)
    [job_arn] = job.provider_batch_ids
    assert job_arn.startswith("arn:aws:bedrock:")

    ended = await _wait_until_ended(manager, job.id)
    assert ended.status is BatchStatus.COMPLETED
    results = {result.id: result for result in await manager.get_results(job.id)}
    assert len(results) == 121
    answered = [results[r.id] for r in requests]
    assert all(r.ok and r.response and r.input_tokens > 0 and r.output_tokens > 0 for r in answered)
    assert results["bad"].error and "max_tokens" in results["bad"].error
    assert results["bad"].retryable is False

    keys = _keys(aws_endpoint, bucket)
    [input_key] = [k for k in keys if k.endswith("/input.jsonl")]
    [output_key] = [k for k in keys if k.endswith("/input.jsonl.out")]
    [manifest_key] = [k for k in keys if k.endswith("/manifest.json.out")]
    s3 = boto3.client("s3", endpoint_url=aws_endpoint)
    first = json.loads(s3.get_object(Bucket=bucket, Key=input_key)["Body"].read().splitlines()[0])
    assert first["recordId"] == "r0000" and first["modelInput"]["anthropic_version"] == "bedrock-2023-05-31"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert (manifest["successRecordCount"], manifest["errorRecordCount"]) == (120, 1)
    assert output_key.startswith(input_key.rsplit("/", 1)[0] + "/output/")


async def test_a_job_below_the_minimum_record_count_is_refused_before_upload(
    bedrock_emulator: EmulatorProcess, aws_endpoint: str, bucket: str
) -> None:
    manager = BatchManager(_provider(bedrock_emulator, bucket))
    job = await manager.submit(_requests(5), job_id="contracts.small")
    assert job.status is BatchStatus.FAILED
    results = await manager.get_results(job.id)
    assert len(results) == 5
    assert all(r.error and "at least 100" in r.error and not r.retryable for r in results)
    assert _keys(aws_endpoint, bucket) == []
    assert bedrock_emulator.stats()["requests_by_endpoint"].get("bedrock.create", 0) == 0


async def test_the_emulator_fails_a_job_below_the_minimum_and_knows_its_arn(
    bedrock_emulator: EmulatorProcess, aws_endpoint: str, bucket: str
) -> None:
    """The control plane itself, through boto3's own bedrock client."""
    s3 = boto3.client("s3", endpoint_url=aws_endpoint)
    s3.put_object(Bucket=bucket, Key="in/small.jsonl", Body=b'{"recordId":"a","modelInput":{}}\n')
    bedrock = boto3.client("bedrock", endpoint_url=bedrock_emulator.url, region_name="us-east-1")
    arn = bedrock.create_model_invocation_job(
        jobName="small-job",
        roleArn=ROLE,
        modelId=MODEL,
        clientRequestToken="token-1",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in/small.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}},
    )["jobArn"]
    again = bedrock.create_model_invocation_job(
        jobName="small-job",
        roleArn=ROLE,
        modelId=MODEL,
        clientRequestToken="token-1",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in/small.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}},
    )["jobArn"]
    assert again == arn  # the idempotency token returns the same job
    with anyio.move_on_after(10):
        while True:
            job = bedrock.get_model_invocation_job(jobIdentifier=arn)
            if job["status"] == "Failed":
                break
            await anyio.sleep(0.05)
    assert job["status"] == "Failed"
    assert "minimum" in job["message"]
    listed = bedrock.list_model_invocation_jobs(nameContains="small")["invocationJobSummaries"]
    assert [summary["jobArn"] for summary in listed] == [arn]
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_model_invocation_job(jobIdentifier="nope")


async def test_stopping_a_job_cancels_it(
    bedrock_emulator: EmulatorProcess, aws_endpoint: str, bucket: str
) -> None:
    bedrock_emulator.configure({"lifecycle": {"in_progress_min_s": 600}})
    manager = BatchManager(_provider(bedrock_emulator, bucket))
    job = await manager.submit(_requests(100), job_id="contracts.stop")
    cancelled = await manager.cancel(job.id)
    assert cancelled.status is BatchStatus.CANCELLED
    ended = await _wait_until_ended(manager, job.id)
    assert ended.status is BatchStatus.CANCELLED and ended.detail == "cancelled"


async def test_a_job_bedrock_no_longer_knows_is_lost_and_its_records_resubmitted(
    bedrock_emulator: EmulatorProcess, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The emulator keeps Bedrock jobs in memory: restarted, it has forgotten them (ResourceNotFound)."""
    requests = _requests(120)
    manager = BatchManager(_provider(bedrock_emulator, bucket))
    job = await manager.submit(requests, job_id="contracts.forgotten")
    [forgotten] = job.provider_batch_ids
    bedrock_emulator.restart()

    with caplog.at_level(logging.WARNING, logger="batch_pipelines.engine"):
        ended = await _wait_until_ended(manager, job.id)
    assert any(
        f"provider batch {forgotten} " in r.getMessage() and "is lost" in r.getMessage()
        for r in caplog.records
    )
    assert ended.status is BatchStatus.FAILED and ended.detail.startswith("lost:")
    results = await manager.get_results(job.id)
    assert len(results) == 120
    assert {(r.error_type, r.retryable) for r in results} == {("batch_lost", True)}

    retried = await manager.retry_failed(job.id)
    assert retried.attempt == 2
    done = await _wait_until_ended(manager, job.id)
    assert done.status is BatchStatus.COMPLETED
    answered = await manager.get_results(job.id)
    assert [r.id for r in answered] == [r.id for r in requests]
    assert all(r.ok and r.attempt == 2 for r in answered)
    assert bedrock_emulator.stats()["requests_by_endpoint"]["bedrock.create"] == 1  # since the restart


HANDBOOK = " ".join(f"Clause {n}: a contract term about topic {n}, renewal {n % 9}." for n in range(110))


async def test_region_prefixed_model_ids_are_priced_and_cache_tokens_kept(
    bedrock_emulator: EmulatorProcess, bucket: str
) -> None:
    """`us.anthropic.claude-3-5-haiku-…-v1:0` is priced as claude-3-5-haiku (0.80 / 4.00 USD per 1M,
    cache reads 0.1x, writes 1.25x, batch half); a cache_control system prompt is written once, then read."""
    provider = BedrockProvider(
        f"us.{MODEL}", role_arn=ROLE, s3_uri=f"s3://{bucket}/batches", base_url=bedrock_emulator.url
    )
    assert provider.price is not None
    system = [{"type": "text", "text": HANDBOOK, "cache_control": {"type": "ephemeral"}}]
    requests = [
        BatchRequest(
            id=f"c{i:03d}", messages=[{"role": "user", "content": f"Contract {i}"}], params={"system": system}
        )
        for i in range(100)
    ]
    manager = BatchManager(provider)
    job = await manager.submit(requests, job_id="contracts.cached")
    assert (await _wait_until_ended(manager, job.id)).status is BatchStatus.COMPLETED
    results = await manager.get_results(job.id)
    assert all(r.ok for r in results)
    assert sum(1 for r in results if r.cache_write_input_tokens) == 1
    assert sum(1 for r in results if r.cached_input_tokens) == 99
    by_hand = (
        0.5
        / 1e6
        * sum(
            (r.input_tokens - r.cached_input_tokens - r.cache_write_input_tokens) * 0.80
            + r.cached_input_tokens * 0.08
            + r.cache_write_input_tokens * 1.00
            + r.output_tokens * 4.00
            for r in results
        )
    )
    cost = (await manager.get_job(job.id)).cost
    assert cost.actual_usd == pytest.approx(by_hand, rel=0.01)
    assert cost.cache_saved_usd is not None and cost.cache_saved_usd > 0


async def test_a_job_that_never_started_in_time_is_expired(
    bedrock_emulator: EmulatorProcess, bucket: str
) -> None:
    bedrock_emulator.queue_scenario("expire_all", provider="bedrock")
    manager = BatchManager(_provider(bedrock_emulator, bucket))
    job = await manager.submit(_requests(100), job_id="contracts.expired")
    ended = await _wait_until_ended(manager, job.id)
    assert ended.detail == "expired"
    results = await manager.get_results(job.id)
    assert len(results) == 100 and all(not r.ok and r.retryable for r in results)


async def test_a_job_that_ran_out_of_time_is_partially_completed(
    bedrock_emulator: EmulatorProcess, bucket: str
) -> None:
    """botocore: PartiallyCompleted means not every record could be processed in time; the processed
    ones are kept and the rest can be sent again."""
    bedrock_emulator.queue_scenario("expire_half", provider="bedrock")
    provider = _provider(bedrock_emulator, bucket)
    manager = BatchManager(provider)
    job = await manager.submit(_requests(120), job_id="contracts.partial")
    ended = await _wait_until_ended(manager, job.id)
    [job_arn] = ended.provider_batch_ids
    assert (await provider.get_batch(job_arn)).raw_status == "PartiallyCompleted"
    assert ended.status is BatchStatus.COMPLETED and ended.detail == "partially_completed"
    results = await manager.get_results(job.id)
    assert sum(r.ok for r in results) == 60
    assert all(r.retryable for r in results if not r.ok)
