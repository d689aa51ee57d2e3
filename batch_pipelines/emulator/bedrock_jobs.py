"""AWS Bedrock batch inference, control plane only (boto3 ``bedrock``: rest-json, API 2023-04-20).

POST /model-invocation-job, GET /model-invocation-job/{id or ARN}, POST …/{id or ARN}/stop and
GET /model-invocation-jobs. Input and output live in S3, as on AWS: a job reads its JSONL input
(``{"recordId", "modelInput"}`` lines) through an S3 client and writes ``<output>/<job id>/<input
name>.out`` plus ``manifest.json.out``. The S3 client is boto3's own, so ``AWS_ENDPOINT_URL_S3`` in the
emulator's environment points it at a local S3 server (moto in the tests). Claude-style ``modelInput``
bodies are answered by the emulator's Messages model.

A job with fewer records than ``$BATCH_PIPELINES_EMULATOR_BEDROCK_MIN_RECORDS`` (default 100, Bedrock's
common per-model minimum) fails validation. SigV4 signatures are not checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio.to_thread
import boto3
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batch_pipelines.emulator.errors import ApiError
from batch_pipelines.emulator.model import anthropic_message
from batch_pipelines.emulator.runtime import Runtime

MIN_RECORDS_ENV = "BATCH_PIPELINES_EMULATOR_BEDROCK_MIN_RECORDS"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ENDED = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        return JSONResponse(
            {"message": self.message}, status_code=self.status, headers={"x-amzn-ErrorType": self.code}
        )


def _validation(message: str) -> AwsError:
    return AwsError(400, "ValidationException", message)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def _split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise _validation(f"Invalid S3 URI {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


@dataclass
class BedrockJob:
    job_id: str
    name: str
    model_id: str
    role_arn: str
    token: str | None
    input_uri: str
    output_uri: str
    timeout_hours: int
    submit_time: float
    status: str = "Submitted"
    message: str | None = None
    last_modified: float = 0.0
    end_time: float | None = None
    total: int = 0
    processed: int = 0
    succeeded: int = 0
    errored: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{self.job_id}"

    def set_status(self, status: str, message: str | None = None) -> None:
        now = datetime.now(UTC).timestamp()
        self.status, self.last_modified = status, now
        if message is not None:
            self.message = message
        if status in ENDED:
            self.end_time = now

    def describe(self) -> dict[str, Any]:
        body = {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "clientRequestToken": self.token,
            "roleArn": self.role_arn,
            "status": self.status,
            "message": self.message,
            "submitTime": _iso(self.submit_time),
            "lastModifiedTime": _iso(self.last_modified or self.submit_time),
            "endTime": _iso(self.end_time),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
            "jobExpirationTime": _iso(self.submit_time + self.timeout_hours * 3600),
            "totalRecordCount": self.total,
            "processedRecordCount": self.processed,
            "successRecordCount": self.succeeded,
            "errorRecordCount": self.errored,
        }
        return {key: value for key, value in body.items() if value is not None}


class BedrockRoutes:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.jobs: dict[str, BedrockJob] = {}
        self._s3: Any = None

    def routes(self) -> list[Route]:
        return [
            Route("/model-invocation-job", self._counted("create", self.create), methods=["POST"]),
            Route("/model-invocation-jobs", self._counted("list", self.list_jobs), methods=["GET"]),
            Route(
                "/model-invocation-job/{job:path}/stop", self._counted("stop", self.stop), methods=["POST"]
            ),
            Route("/model-invocation-job/{job:path}", self._counted("get", self.get), methods=["GET"]),
        ]

    def _counted(self, name: str, handler: Any) -> Any:
        counters = self.runtime.counters

        async def endpoint(request: Request) -> Response:
            counters[f"requests.bedrock.{name}"] += 1
            try:
                response: Response = await handler(request)
            except AwsError as error:
                response = error.response()
            counters[f"status.{response.status_code}"] += 1
            response.headers["x-amzn-RequestId"] = secrets.token_hex(16)
            return response

        return endpoint

    # -- handlers --------------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        body = await _json_body(request)
        for required in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if not body.get(required):
                raise _validation(f"1 validation error detected: '{required}' must not be null")
        token = body.get("clientRequestToken")
        if token:
            for job in self.jobs.values():
                if job.token == token:
                    return JSONResponse({"jobArn": job.arn})
        if any(job.name == body["jobName"] for job in self.jobs.values()):
            raise AwsError(409, "ConflictException", f"A job named {body['jobName']} already exists")
        timeout = body.get("timeoutDurationInHours", 24)
        if not isinstance(timeout, int) or not 24 <= timeout <= 168:
            raise _validation("timeoutDurationInHours must be between 24 and 168")
        try:
            input_uri = body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            output_uri = body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        except (KeyError, TypeError):
            raise _validation(
                "inputDataConfig and outputDataConfig need an S3 configuration with s3Uri"
            ) from None
        _split_s3(input_uri)
        _split_s3(output_uri)
        job = BedrockJob(
            job_id=secrets.token_hex(6),
            name=body["jobName"],
            model_id=body["modelId"],
            role_arn=body["roleArn"],
            token=token,
            input_uri=input_uri,
            output_uri=output_uri,
            timeout_hours=timeout,
            submit_time=datetime.now(UTC).timestamp(),
        )
        self.jobs[job.job_id] = job
        self.runtime.counters["batches_created.bedrock"] += 1
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        return JSONResponse({"jobArn": job.arn})

    async def get(self, request: Request) -> Response:
        return JSONResponse(self._job(request).describe())

    async def stop(self, request: Request) -> Response:
        job = self._job(request)
        if job.status in ENDED:
            raise _validation(f"Job {job.arn} is {job.status} and cannot be stopped")
        job.set_status("Stopping")
        if job.task is not None:
            job.task.cancel()
        asyncio.get_running_loop().call_later(
            self.runtime.config.scaled(self.runtime.config.lifecycle.cancelling_s), job.set_status, "Stopped"
        )
        return JSONResponse({})

    async def list_jobs(self, request: Request) -> Response:
        query = request.query_params
        jobs = sorted(
            self.jobs.values(), key=lambda j: j.submit_time, reverse=query.get("sortOrder") != "Ascending"
        )
        if name := query.get("nameContains"):
            jobs = [job for job in jobs if name in job.name]
        if status := query.get("statusEquals"):
            jobs = [job for job in jobs if job.status == status]
        if after := query.get("submitTimeAfter"):
            since = datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp()
            jobs = [job for job in jobs if job.submit_time > since]
        start = int(query.get("nextToken") or 0)
        size = int(query.get("maxResults") or 1000)
        page = jobs[start : start + size]
        answer: dict[str, Any] = {"invocationJobSummaries": [job.describe() for job in page]}
        if start + size < len(jobs):
            answer["nextToken"] = str(start + size)
        return JSONResponse(answer)

    def _job(self, request: Request) -> BedrockJob:
        identifier = unquote(request.path_params["job"])
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None:
            raise AwsError(404, "ResourceNotFoundException", f"Could not find job {identifier}")
        return job

    # -- a job's life ----------------------------------------------------------------------------------

    async def _run(self, job: BedrockJob) -> None:
        config = self.runtime.config
        scenario = self.runtime.take_scenario("bedrock")
        job.set_status("Validating")
        try:
            records = await anyio.to_thread.run_sync(self._read_input, job)
        except AwsError as error:
            job.set_status("Failed", error.message)
            return
        minimum = int(os.environ.get(MIN_RECORDS_ENV, "100"))
        job.total = len(records)
        if len(records) < minimum:
            job.set_status(
                "Failed", f"The job has {len(records)} records; the minimum for {job.model_id} is {minimum}"
            )
            return
        await asyncio.sleep(config.scaled(config.lifecycle.validating_s))
        if scenario == "expire_all":  # botocore: scheduled, but did not begin before the timeout
            job.set_status("Scheduled")
            await asyncio.sleep(config.scaled(config.lifecycle.in_progress_min_s))
            job.set_status("Expired", f"The job did not start within its {job.timeout_hours} hour timeout")
            return
        job.set_status("InProgress")
        in_time = records[: len(records) // 2] if scenario == "expire_half" else records
        outputs = [self._answer(job, record) for record in in_time]
        await asyncio.sleep(config.scaled(config.lifecycle.in_progress_min_s))
        await anyio.to_thread.run_sync(self._write_output, job, outputs, len(records))
        job.processed = len(outputs)
        job.errored = sum(1 for line in outputs if "error" in line)
        job.succeeded = job.processed - job.errored
        if len(outputs) < len(records):  # botocore: not all records could be processed in time
            job.set_status(
                "PartiallyCompleted",
                f"{len(records) - len(outputs)} records were not processed within the "
                f"{job.timeout_hours} hour timeout",
            )
        elif job.errored and not job.succeeded:
            job.set_status("Failed", "Every record failed; see the output file")
        else:  # records that errored are in the output file with their error
            job.set_status("Completed")

    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3", region_name=os.environ.get("AWS_DEFAULT_REGION", REGION))
        return self._s3

    def _read_input(self, job: BedrockJob) -> list[dict[str, Any]]:
        bucket, key = _split_s3(job.input_uri)
        try:
            data = self._client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:  # the S3 error's own words become the job's message
            raise _validation(f"Cannot read {job.input_uri}: {error}") from error
        records = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise _validation(f"Line {number} of {job.input_uri} is not valid JSON") from None
            if not isinstance(record, dict) or "modelInput" not in record:
                raise _validation(f"Line {number} of {job.input_uri} has no modelInput")
            records.append(record)
        return records

    def _answer(self, job: BedrockJob, record: dict[str, Any]) -> dict[str, Any]:
        model = self.runtime.config.model
        line: dict[str, Any] = {"recordId": record.get("recordId"), "modelInput": record["modelInput"]}
        body = dict(record["modelInput"]) if isinstance(record["modelInput"], dict) else {}
        body["model"] = job.model_id
        try:
            output = anthropic_message(
                body, model.chars_per_token, model.reply_tokens, self.runtime.prompt_cache
            )
        except ApiError as error:
            line["error"] = {"errorCode": error.status, "errorMessage": error.message}
            return line
        output.pop("model", None)
        line["modelOutput"] = output
        return line

    def _write_output(self, job: BedrockJob, outputs: list[dict[str, Any]], total: int) -> None:
        bucket, prefix = _split_s3(job.output_uri)
        folder = "/".join(part for part in (prefix.rstrip("/"), job.job_id) if part)
        input_name = job.input_uri.rsplit("/", 1)[-1]
        body = "".join(json.dumps(line) + "\n" for line in outputs).encode()
        self._client().put_object(Bucket=bucket, Key=f"{folder}/{input_name}.out", Body=body)
        usage = [line["modelOutput"].get("usage", {}) for line in outputs if "modelOutput" in line]
        manifest = {
            "totalRecordCount": total,
            "processedRecordCount": len(outputs),
            "successRecordCount": len(usage),
            "errorRecordCount": len(outputs) - len(usage),
            "inputTokenCount": sum(int(u.get("input_tokens", 0)) for u in usage),
            "outputTokenCount": sum(int(u.get("output_tokens", 0)) for u in usage),
        }
        self._client().put_object(
            Bucket=bucket, Key=f"{folder}/manifest.json.out", Body=json.dumps(manifest).encode()
        )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        raise AwsError(400, "SerializationException", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AwsError(400, "SerializationException", "The request body must be a JSON object")
    return body
