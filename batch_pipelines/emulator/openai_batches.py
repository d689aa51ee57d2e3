"""OpenAI's Batch API: create, retrieve, cancel, list; input-file validation with line numbers.

As at OpenAI, creating a batch answers `validating` at once: its input file is checked afterwards, in a
worker thread, and the batch then runs, or fails naming the bad lines.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batch_pipelines.emulator.config import EmulatorConfig
from batch_pipelines.emulator.errors import invalid, not_found
from batch_pipelines.emulator.lifecycle import Lifecycle, new_plan, order_seed
from batch_pipelines.emulator.model import content_text, count_tokens, embedding_inputs
from batch_pipelines.emulator.paging import int_param, page_envelope
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.store import BatchRecord, BatchRequest, new_id
from batch_pipelines.emulator.wire import parse_json_object

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
ACCEPTED_BUT_UNSUPPORTED = ("/v1/responses", "/v1/completions", "/v1/moderations")
MAX_REPORTED_ERRORS = 100


class InputCheck:
    """The requests of an input file, or the line-numbered reasons it fails validation."""

    def __init__(self, content: bytes, endpoint: str, max_requests: int, chars_per_token: float) -> None:
        self.requests: list[BatchRequest] = []
        self.errors: list[dict[str, Any]] = []
        self.model: str | None = None
        self.tokens = 0
        self.embedding_inputs = 0
        self._seen: dict[str, int] = {}
        lines = content.decode("utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip() and len(self.errors) < MAX_REPORTED_ERRORS:
                self._check_line(number, line, endpoint, chars_per_token)
        if not self.requests and not self.errors:
            self._error("empty_file", None, "The input file contains no requests.", None)
        if len(self.requests) > max_requests:
            message = (
                f"The input file has {len(self.requests)} requests; a batch may have at most {max_requests}."
            )
            self.errors.insert(0, _error_item("too_many_requests", None, message, None))

    def _error(self, code: str, line: int | None, message: str, param: str | None) -> None:
        self.errors.append(_error_item(code, line, message, param))

    def _check_line(self, number: int, line: str, endpoint: str, chars_per_token: float) -> None:
        try:
            item = json.loads(line)
        except ValueError:
            self._error("invalid_json_line", number, f"Line {number} is not valid JSON.", None)
            return
        if not isinstance(item, dict):
            self._error("invalid_json_line", number, f"Line {number} is not a JSON object.", None)
            return
        custom_id = item.get("custom_id")
        body = item.get("body")
        for name, value in (
            ("custom_id", custom_id),
            ("method", item.get("method")),
            ("url", item.get("url")),
        ):
            if value is None:
                self._error(
                    "missing_required_parameter", number, f"Missing required parameter: '{name}'.", name
                )
                return
        if not isinstance(custom_id, str) or not custom_id:
            self._error("invalid_custom_id", number, "'custom_id' must be a non-empty string.", "custom_id")
            return
        if custom_id in self._seen:
            message = f"The custom_id {custom_id!r} on line {number} duplicates line {self._seen[custom_id]}."
            self._error("duplicate_custom_id", number, message, "custom_id")
            return
        self._seen[custom_id] = number
        if item["method"] != "POST":
            self._error(
                "invalid_method",
                number,
                f"Invalid method {item['method']!r}; only POST is supported.",
                "method",
            )
            return
        if item["url"] != endpoint:
            message = f"The url {item['url']!r} does not match the batch endpoint {endpoint!r}."
            self._error("invalid_url", number, message, "url")
            return
        if not isinstance(body, dict):
            self._error("missing_required_parameter", number, "Missing required parameter: 'body'.", "body")
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._error(
                "missing_required_parameter",
                number,
                "Missing required parameter: 'body.model'.",
                "body.model",
            )
            return
        if self.model is None:
            self.model = model
        elif model != self.model:
            message = f"The model {model!r} differs from {self.model!r}; a batch must use a single model."
            self._error("mismatched_model", number, message, "body.model")
            return
        self.tokens += _input_tokens(endpoint, body, chars_per_token)
        if endpoint == "/v1/embeddings":
            raw_input = body.get("input")
            self.embedding_inputs += len(raw_input) if isinstance(raw_input, list) else 1
        self.requests.append(BatchRequest(custom_id, body, line))


def check_input(content: bytes, endpoint: str, config: EmulatorConfig, scenario: str | None) -> InputCheck:
    """Every check of a batch's input file that OpenAI makes while the batch is validating, but the
    enqueued-token limit (that one depends on the other batches at the moment the check ends)."""
    limits = config.limits
    check = InputCheck(content, endpoint, limits.openai_max_requests, config.model.chars_per_token)
    if check.embedding_inputs > limits.openai_max_embedding_inputs:
        message = (
            f"The batch has {check.embedding_inputs} embedding inputs; "
            f"at most {limits.openai_max_embedding_inputs} are allowed."
        )
        check.errors.insert(0, _error_item("too_many_inputs", None, message, None))
    if len(content) > limits.openai_max_file_bytes:
        message = f"The input file is larger than {limits.openai_max_file_bytes} bytes."
        check.errors.insert(0, _error_item("file_too_large", None, message, None))
    if scenario == "fail_validation" and not check.errors:
        check.errors = [
            _error_item("invalid_request", 1, "Line 1 failed validation (emulator scenario).", "body")
        ]
    return check


def _input_tokens(endpoint: str, body: dict[str, Any], chars_per_token: float) -> int:
    if endpoint == "/v1/embeddings":
        try:
            return sum(count_tokens(text, chars_per_token) for text in embedding_inputs(body))
        except Exception:
            return 0
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(
        count_tokens(content_text(m.get("content")), chars_per_token) for m in messages if isinstance(m, dict)
    )


def _error_item(code: str, line: int | None, message: str, param: str | None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def _check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise invalid("'metadata' must be an object with at most 16 pairs.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise invalid(
                f"Invalid metadata pair {key!r}: keys are at most 64 characters, "
                "values strings of at most 512.",
                param="metadata",
            )
    return dict(metadata)


class BatchRoutes:
    def __init__(self, runtime: Runtime, lifecycle: Lifecycle) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle
        self._validations: dict[str, asyncio.Task[None]] = {}

    def get(self, batch_id: str) -> BatchRecord:
        batch = self.runtime.store.batches.get(batch_id)
        if batch is None or batch.provider != "openai":
            raise not_found(f"No batch found with id '{batch_id}'.", param="batch_id")
        self._refresh(batch)
        return batch

    def _refresh(self, batch: BatchRecord) -> None:
        if batch.validation_pending:
            self._start_validation(batch)
        self.lifecycle.refresh(batch)

    async def create(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        config = self.runtime.config
        for name in ("input_file_id", "endpoint", "completion_window"):
            if body.get(name) is None:
                raise invalid(
                    f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        endpoint = body["endpoint"]
        if endpoint not in ENDPOINTS:
            supported = ", ".join(ENDPOINTS)
            message = f"Invalid value for 'endpoint': {endpoint!r}. The emulator supports: {supported}."
            if endpoint not in ACCEPTED_BUT_UNSUPPORTED:
                message = f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: {supported}."
            raise invalid(message, param="endpoint", code="invalid_value")
        if body["completion_window"] != "24h":
            raise invalid(
                f"Invalid value for 'completion_window': {body['completion_window']!r}. "
                "Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        metadata = _check_metadata(body.get("metadata"))
        input_file = self.runtime.store.files.get(body["input_file_id"])
        if input_file is None:
            raise not_found(f"No such File object: {body['input_file_id']}", param="input_file_id")
        if input_file.purpose != "batch":
            raise invalid(
                f"The input file {input_file.id} has purpose {input_file.purpose!r}; "
                "batches need purpose 'batch'.",
                param="input_file_id",
            )
        created_at = time.time()
        batch = BatchRecord(
            id=new_id("batch_"),
            provider="openai",
            created_at=created_at,
            total=0,
            order_seed="",
            endpoint=endpoint,
            input_file_id=input_file.id,
            metadata=metadata,
            scenario=self.runtime.take_scenario("openai"),
            validation_pending=True,
            validated_at=math.inf,
            work_done_at=math.inf,
            finalized_at=math.inf,
            expires_at=created_at + config.scaled(config.lifecycle.completion_window_s),
        )
        self.runtime.store.save_batch(batch)
        self.runtime.counters["batches_created.openai"] += 1
        self._start_validation(batch)
        return JSONResponse(self.to_api(batch))

    def _start_validation(self, batch: BatchRecord) -> None:
        """Check the batch's input file in a worker thread (again after a restart left it unchecked)."""
        if batch.id in self._validations:
            return
        task = asyncio.get_running_loop().create_task(self._validate(batch))
        self._validations[batch.id] = task
        task.add_done_callback(lambda _task: self._validations.pop(batch.id, None))

    async def _validate(self, batch: BatchRecord) -> None:
        config = self.runtime.config
        content = self.runtime.store.contents.get(batch.input_file_id, b"")
        check = await asyncio.to_thread(check_input, content, batch.endpoint, config, batch.scenario)
        batch.validation_pending = False
        if batch.id not in self.runtime.store.batches:
            return  # forgotten through the admin API while its file was checked
        if batch.cancel_requested_at is not None:
            self.runtime.store.save_batch(batch)  # cancelled before its file was checked: runs nothing
            return
        errors = check.errors
        model = check.model or ""
        limit = config.limits.enqueued_token_limit(model)
        if not errors and (
            batch.scenario == "token_limit_exceeded"
            or self.lifecycle.enqueued_tokens(model) + check.tokens > limit
        ):
            message = (
                f"Enqueued token limit reached for {model} in organization org-emulator. "
                f"Limit: {limit:,} enqueued tokens. "
                "Please try again once some in_progress batches have been completed."
            )
            errors = [_error_item("token_limit_exceeded", None, message, None)]
        # The plan starts when the check ends, or as planned if it ended within the validating time.
        started = max(batch.created_at, time.time() - config.scaled(config.lifecycle.validating_s))
        plan = new_plan(config, started, len(check.requests), batch.scenario)
        batch.total = 0 if errors else len(check.requests)
        batch.order_seed = order_seed(config.seed, [r.custom_id for r in check.requests])
        batch.model = check.model
        batch.enqueued_tokens = check.tokens
        batch.validation_errors = errors
        batch.requests = [] if errors else check.requests
        batch.validated_at, batch.work_done_at = plan.validated_at, plan.work_done_at
        batch.finalized_at, batch.expires_at = plan.finalized_at, plan.expires_at
        self.runtime.store.save_batch(batch)
        self.lifecycle.refresh_when_due(batch)

    async def retrieve(self, request: Request) -> Response:
        return JSONResponse(self.to_api(self.get(request.path_params["batch_id"])))

    async def cancel(self, request: Request) -> Response:
        batch = self.get(request.path_params["batch_id"])
        status = self.lifecycle.visible_status(batch)
        if status not in ("validating", "in_progress", "finalizing"):
            raise invalid(f"Cannot cancel a batch with status '{status}'.", code="batch_not_cancellable")
        self.lifecycle.cancel(batch)
        return JSONResponse(self.to_api(batch))

    async def list(self, request: Request) -> Response:
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", default=20, low=1, high=100)
        batches = sorted(
            (b for b in self.runtime.store.batches.values() if b.provider == "openai"),
            key=lambda b: (b.created_at, b.id),
            reverse=True,
        )
        after = query.get("after")
        if after:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        page = batches[:limit]
        for batch in page:
            self._refresh(batch)
        return JSONResponse(page_envelope([self.to_api(b) for b in page], has_more=len(batches) > limit))

    def to_api(self, batch: BatchRecord) -> dict[str, Any]:
        status = self.lifecycle.visible_status(batch)
        if batch.status is not None:
            counts = dict(batch.counts)
        else:
            completed, failed = self.lifecycle.progress(batch)
            counts = {"total": batch.total, "completed": completed, "failed": failed}
        started = status != "failed" and (
            batch.cancel_requested_at is None or batch.cancel_requested_at >= batch.validated_at
        )
        now = time.time()
        reached_finalizing = status in ("finalizing", "completed") or (
            status in ("cancelling", "cancelled") and (batch.cancel_requested_at or 0) >= batch.work_done_at
        )
        usage = batch.usage or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": {"object": "list", "data": batch.validation_errors}
            if batch.validation_errors
            else None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created_at),
            "in_progress_at": int(batch.validated_at) if started and now >= batch.validated_at else None,
            "expires_at": int(batch.expires_at),
            "finalizing_at": int(batch.work_done_at) if reached_finalizing else None,
            "completed_at": int(batch.finalized_at) if status == "completed" else None,
            "failed_at": int(batch.validated_at) if status == "failed" else None,
            "expired_at": int(batch.expires_at) if status == "expired" else None,
            "cancelling_at": int(batch.cancel_requested_at) if batch.cancel_requested_at else None,
            "cancelled_at": int(batch.cancel_done_at)
            if status == "cancelled" and batch.cancel_done_at
            else None,
            "request_counts": counts,
            "metadata": batch.metadata,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "input_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["total_tokens"],
            },
        }
