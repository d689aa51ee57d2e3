"""AWS Bedrock batch inference: JSONL in S3, a model invocation job, JSONL out in S3.

Calls go through boto3 (the ``bedrock`` and ``s3`` clients; botocore signs them and retries throttling
and server errors in its standard mode) in worker threads. A batch is one job named after the engine's
tags and created with the same name as its idempotency token, so a create repeated after a crash returns
the job already created instead of a second one.

Input: ``<s3_uri>/<job name>/input.jsonl`` with ``{"recordId", "modelInput"}`` lines (Claude's Messages
body with ``anthropic_version``); output: ``<s3_uri>/<job name>/output/<job id>/input.jsonl.out`` lines
``{"recordId", "modelInput", "modelOutput" | "error"}`` and ``manifest.json.out``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from batch_pipelines.providers.anthropic import message_params, result_from_message
from batch_pipelines.wire.errors import TRANSIENT_TYPES, BatchNotFoundError, ProviderError, classify
from batch_pipelines.wire.limits import BatchLimits
from batch_pipelines.wire.pricing import ModelPrice, price_for
from batch_pipelines.wire.provider import ProviderBatchState
from batch_pipelines.wire.requests import BatchRequest, BatchResult, BatchStatus, RequestKind

T = TypeVar("T")

ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Bedrock's default quotas: 50,000 records and 1 GB per job input file; 100 records at least.
DEFAULT_LIMITS = BatchLimits(max_requests=50_000, max_bytes=1_000_000_000)
DEFAULT_MIN_RECORDS = 100
DEFAULT_MAX_TOKENS = 1024
INPUT_NAME = "input.jsonl"

# Bedrock status → (phase, ended, detail).
_STATUSES: dict[str, tuple[BatchStatus, bool, str]] = {
    "Submitted": (BatchStatus.PENDING, False, "submitted"),
    "Validating": (BatchStatus.PENDING, False, "validating"),
    "Scheduled": (BatchStatus.PENDING, False, "scheduled"),
    "InProgress": (BatchStatus.PROCESSING, False, "in_progress"),
    "Stopping": (BatchStatus.CANCELLED, False, "cancelling"),
    "Stopped": (BatchStatus.CANCELLED, True, "cancelled"),
    "Completed": (BatchStatus.COMPLETED, True, "completed"),
    "PartiallyCompleted": (BatchStatus.COMPLETED, True, "partially_completed"),
    "Expired": (BatchStatus.COMPLETED, True, "expired"),
    "Failed": (BatchStatus.FAILED, True, "failed"),
}
# AWS error codes → the engine's error types.
_AWS_CODES = {
    "ThrottlingException": "rate_limit",
    "InternalServerException": "server_error",
    "ServiceUnavailableException": "server_error",
    "ServiceQuotaExceededException": "token_limit_exceeded",  # too many jobs queued: wait for some to end
    "ValidationException": "invalid_request",
    "ConflictException": "invalid_request",
    "AccessDeniedException": "permission",
    "ResourceNotFoundException": "not_found",
}


class BedrockProvider:
    """Bedrock model invocation jobs for Claude models (chat only).

    ``role_arn`` is the service role Bedrock assumes to read and write ``s3_uri`` (``s3://bucket/prefix``
    where batch files go). ``base_url`` overrides the Bedrock control-plane endpoint (the emulator);
    S3 follows boto3's usual configuration (``AWS_ENDPOINT_URL_S3`` for a local S3 server). Jobs smaller
    than ``min_records`` are refused before anything is uploaded: Bedrock would fail them.
    """

    name = "bedrock"

    def __init__(
        self,
        model: str,
        *,
        role_arn: str | None = None,
        s3_uri: str | None = None,
        base_url: str | None = None,
        region: str | None = None,
        limits: BatchLimits | None = None,
        price: ModelPrice | None = None,
        min_records: int = DEFAULT_MIN_RECORDS,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_hours: int = 24,
        max_attempts: int = 6,
    ) -> None:
        role_arn = role_arn or os.environ.get("BATCH_PIPELINES_BEDROCK_ROLE_ARN")
        s3_uri = s3_uri or os.environ.get("BATCH_PIPELINES_BEDROCK_S3_URI")
        if not role_arn or not s3_uri:
            raise ValueError(
                "BedrockProvider: give role_arn and s3_uri (or set BATCH_PIPELINES_BEDROCK_ROLE_ARN and "
                "BATCH_PIPELINES_BEDROCK_S3_URI)"
            )
        parts = urlsplit(s3_uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"BedrockProvider: s3_uri {s3_uri!r} is not s3://bucket[/prefix]")
        self.model = model
        self.role_arn = role_arn
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.limits = limits or DEFAULT_LIMITS
        self.price = price or price_for(model)
        self.min_records = min_records
        self.default_max_tokens = default_max_tokens
        self.timeout_hours = timeout_hours
        config = Config(retries={"mode": "standard", "max_attempts": max_attempts})
        self._bedrock = boto3.client("bedrock", endpoint_url=base_url, region_name=region, config=config)
        self._s3 = boto3.client("s3", region_name=region, config=config)

    def __repr__(self) -> str:
        return f"BedrockProvider(model={self.model!r}, s3=s3://{self.bucket}/{self.prefix})"

    def render_line(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> bytes:
        if request.kind != "chat":
            raise ValueError(f"request {request.id!r}: the Bedrock provider runs chat requests only")
        model_input = message_params(self.model, request, self.default_max_tokens)
        del model_input["model"]  # the job names the model
        model_input["anthropic_version"] = ANTHROPIC_VERSION
        return json.dumps({"recordId": request.id, "modelInput": model_input}).encode() + b"\n"

    async def create_batch(
        self, path: Path, *, kind: RequestKind, tags: dict[str, str]
    ) -> ProviderBatchState:
        with path.open("rb") as handle:
            records = sum(1 for line in handle if line.strip())
        if records < self.min_records:
            raise ProviderError(
                f"{records} records, but a Bedrock batch job of {self.model} needs at least "
                f"{self.min_records}: send this work through the realtime path",
                provider=self.name,
                error_type="invalid_request",
            )
        name = job_name(tags)
        folder = self._key(name)

        def create() -> str:
            self._s3.upload_file(str(path), self.bucket, f"{folder}/{INPUT_NAME}")
            answer = self._bedrock.create_model_invocation_job(
                jobName=name,
                roleArn=self.role_arn,
                clientRequestToken=name,
                modelId=self.model,
                inputDataConfig={
                    "s3InputDataConfig": {
                        "s3Uri": f"s3://{self.bucket}/{folder}/{INPUT_NAME}",
                        "s3InputFormat": "JSONL",
                    }
                },
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{self.bucket}/{folder}/output/"}},
                timeoutDurationInHours=self.timeout_hours,
            )
            return str(answer["jobArn"])

        return await self.get_batch(await self._call(create))

    async def find_batch(
        self, tags: dict[str, str], *, created_after: float, request_count: int, exclude: set[str]
    ) -> ProviderBatchState | None:
        """The job named after these tags, if one was created (names are unique per batch intent)."""
        name = job_name(tags)

        def find() -> list[dict[str, Any]]:
            answer = self._bedrock.list_model_invocation_jobs(nameContains=name, maxResults=10)
            return [job for job in answer.get("invocationJobSummaries", []) if job.get("jobName") == name]

        found = [_state(job) for job in await self._call(find)]
        found = [state for state in found if state.id not in exclude]
        return found[0] if found else None

    async def get_batch(self, batch_id: str) -> ProviderBatchState:
        return _state(await self._describe_job(batch_id))

    async def _describe_job(self, batch_id: str) -> dict[str, Any]:
        try:
            return await self._call(partial(self._describe, batch_id))
        except ProviderError as error:
            if error.status_code == 404 and error.error_type == "not_found":  # ResourceNotFoundException
                raise BatchNotFoundError.from_error(error) from None
            raise

    async def cancel_batch(self, batch_id: str) -> ProviderBatchState:
        await self._call(lambda: self._bedrock.stop_model_invocation_job(jobIdentifier=batch_id))
        return await self.get_batch(batch_id)

    async def iter_result_lines(self, batch_id: str) -> AsyncIterator[bytes]:
        """Every line of the job's ``.jsonl.out`` files (none when the job wrote none)."""
        job = await self._describe_job(batch_id)
        output = urlsplit(job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
        folder = "/".join(p for p in (output.path.strip("/"), batch_id.rsplit("/", 1)[-1]) if p)

        def output_keys() -> list[str]:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=output.netloc, Prefix=folder)
            return sorted(
                item["Key"] for page in pages for item in page.get("Contents", []) if _is_output(item["Key"])
            )

        for key in await self._call(output_keys):
            body = await self._call(partial(self._open, output.netloc, key))
            while (line := await self._call(body.readline)) != b"":
                if line.strip():
                    yield line

    def parse_result_line(self, line: bytes) -> BatchResult:
        record = json.loads(line)
        record_id = str(record["recordId"])
        error = record.get("error")
        if error:
            message = str(error.get("errorMessage") or "the record failed")
            code = error.get("errorCode")
            error_type, retryable = classify(None, message, int(code) if isinstance(code, int) else None)
            return BatchResult(record_id, error=message, error_type=error_type, retryable=retryable)
        return result_from_message(record_id, record.get("modelOutput") or {})

    async def aclose(self) -> None:
        return None

    def _describe(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._bedrock.get_model_invocation_job(jobIdentifier=batch_id)
        return answer

    def _open(self, bucket: str, key: str) -> Any:
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"]

    def _key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    async def _call(self, func: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(func)
        except ClientError as error:
            raise _provider_error(error) from None
        except BotoCoreError as error:
            raise ProviderError(
                str(error), provider="bedrock", error_type="connection", retryable=True
            ) from None


def job_name(tags: dict[str, str]) -> str:
    """A Bedrock job name (≤ 63 characters of letters, digits, '-', '+', '.') unique to one batch intent."""
    digest = hashlib.sha256(json.dumps(tags, sort_keys=True).encode()).hexdigest()[:24]
    return f"bp-{digest}"


def _is_output(key: str) -> bool:
    return key.endswith(".out") and not key.endswith("manifest.json.out")


def _state(job: dict[str, Any]) -> ProviderBatchState:
    raw = str(job.get("status"))
    phase, ended, detail = _STATUSES.get(raw, (BatchStatus.PROCESSING, False, raw.lower()))
    submitted = job.get("submitTime")
    created = submitted.timestamp() if isinstance(submitted, datetime) else 0.0
    failed = raw == "Failed"
    return ProviderBatchState(
        id=str(job["jobArn"]),
        raw_status=raw,
        phase=phase,
        detail=detail,
        ended=ended,
        total=int(job.get("totalRecordCount") or 0),
        completed=int(job.get("successRecordCount") or 0),
        failed=int(job.get("errorRecordCount") or 0),
        created_at=created,
        error_code="batch_failed" if failed else None,
        error_message=str(job.get("message")) if failed and job.get("message") else None,
        metadata={"job_name": str(job.get("jobName") or "")},
    )


def _provider_error(error: ClientError) -> ProviderError:
    details = error.response.get("Error", {})
    code = str(details.get("Code") or "")
    message = str(details.get("Message") or code or "Bedrock call failed")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    error_type = _AWS_CODES.get(code) or classify(None, message, status)[0]
    return ProviderError(
        f"{code}: {message}",
        provider="bedrock",
        status_code=status,
        error_type=error_type,
        retryable=error_type in TRANSIENT_TYPES,
    )
