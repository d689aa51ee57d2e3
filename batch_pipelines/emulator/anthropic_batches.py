"""Anthropic's Message Batches API: create, retrieve, list, cancel, delete, results."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batch_pipelines.emulator.errors import ApiError, invalid, not_found
from batch_pipelines.emulator.lifecycle import Lifecycle, new_plan, order_seed
from batch_pipelines.emulator.paging import int_param, page_envelope
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.store import BatchRecord, BatchRequest, new_id
from batch_pipelines.emulator.wire import anthropic_key, parse_json_object, rfc3339

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _checked_requests(raw: Any, max_requests: int) -> list[BatchRequest]:
    if not isinstance(raw, list) or not raw:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(raw) > max_requests:
        raise invalid(f"requests: a batch may contain at most {max_requests} requests, got {len(raw)}")
    seen: set[str] = set()
    requests = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid(f"requests.{index}: Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise invalid(
                f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise invalid(
                f"requests.{index}.custom_id: custom_id {custom_id!r} is used by more than one request"
            )
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise invalid(f"requests.{index}.params: Field required")
        requests.append(BatchRequest(custom_id, params, json.dumps(params)))
    return requests


# The API documents `results_url` as where an ended batch's results are, without promising its form.
RESULTS_DOWNLOAD_PATH = "/v1/message_batch_results/{batch_id}"


def _parsed_requests(raw: bytes, max_requests: int) -> list[BatchRequest]:
    return _checked_requests(parse_json_object(raw).get("requests"), max_requests)


class MessageBatchRoutes:
    def __init__(self, runtime: Runtime, lifecycle: Lifecycle) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle

    def _get(self, request: Request) -> BatchRecord:
        anthropic_key(request, self.runtime.config.api_keys)
        batch_id = request.path_params["batch_id"]
        batch = self.runtime.store.batches.get(batch_id)
        if batch is None or batch.provider != "anthropic":
            raise not_found(f"Message batch {batch_id} not found.")
        self.lifecycle.refresh(batch)
        return batch

    async def create(self, request: Request) -> Response:
        anthropic_key(request, self.runtime.config.api_keys)
        if "content-length" not in request.headers:  # the SDK always sends one; chunked bodies are counted
            self.runtime.counters["message_batches.create.without_content_length"] += 1
        raw = await request.body()
        config = self.runtime.config
        if len(raw) > config.limits.anthropic_max_bytes:
            raise ApiError(
                413, f"Request exceeds the maximum size of {config.limits.anthropic_max_bytes} bytes."
            )
        # Up to 256 MB of JSON: parsed and checked in a worker thread, so other calls are answered meanwhile.
        requests = await asyncio.to_thread(_parsed_requests, raw, config.limits.anthropic_max_requests)
        scenario = self.runtime.take_scenario("anthropic")
        created_at = time.time()
        plan = new_plan(config, created_at, len(requests), scenario)
        batch = BatchRecord(
            id=new_id("msgbatch_"),
            provider="anthropic",
            created_at=created_at,
            total=len(requests),
            order_seed=order_seed(config.seed, [r.custom_id for r in requests]),
            scenario=scenario,
            requests=requests,
            validated_at=plan.validated_at,
            work_done_at=plan.work_done_at,
            finalized_at=plan.finalized_at,
            expires_at=plan.expires_at,
        )
        self.runtime.store.save_batch(batch, with_requests=True)
        self.runtime.counters["batches_created.anthropic"] += 1
        self.lifecycle.refresh_when_due(batch)
        return JSONResponse(self.to_api(batch, request))

    async def retrieve(self, request: Request) -> Response:
        return JSONResponse(self.to_api(self._get(request), request))

    async def cancel(self, request: Request) -> Response:
        batch = self._get(request)
        if batch.status is not None:
            raise invalid(f"Message batch {batch.id} has already ended and cannot be canceled.")
        if batch.cancel_requested_at is None:
            self.lifecycle.cancel(batch)
        return JSONResponse(self.to_api(batch, request))

    async def delete(self, request: Request) -> Response:
        batch = self._get(request)
        if batch.status is None:
            raise invalid(
                f"Message batch {batch.id} cannot be deleted while it is processing; "
                "cancel it and wait until it ends."
            )
        self.runtime.store.delete_batch(batch.id)
        return JSONResponse({"id": batch.id, "type": "message_batch_deleted"})

    async def results(self, request: Request) -> Response:
        batch = self._get(request)
        if batch.results is None:
            raise invalid(f"Message batch {batch.id} has not ended yet; its results are not available.")
        content = "".join(line + "\n" for line in batch.results)
        return Response(content, media_type="application/binary")

    async def list(self, request: Request) -> Response:
        anthropic_key(request, self.runtime.config.api_keys)
        query = request.query_params
        limit = int_param(query.get("limit"), "limit", default=20, low=1, high=1000)
        batches = sorted(
            (b for b in self.runtime.store.batches.values() if b.provider == "anthropic"),
            key=lambda b: (b.created_at, b.id),
            reverse=True,
        )
        ids = [b.id for b in batches]
        before_id, after_id = query.get("before_id"), query.get("after_id")
        if before_id and after_id:
            raise invalid("Only one of before_id and after_id may be given.")
        if after_id:
            rest = batches[ids.index(after_id) + 1 :] if after_id in ids else []
            page, has_more = rest[:limit], len(rest) > limit
        elif before_id:
            rest = batches[: ids.index(before_id)] if before_id in ids else []
            page, has_more = rest[-limit:], len(rest) > limit
        else:
            page, has_more = batches[:limit], len(batches) > limit
        for batch in page:
            self.lifecycle.refresh(batch)
        return JSONResponse(page_envelope([self.to_api(b, request) for b in page], has_more, openai=False))

    def to_api(self, batch: BatchRecord, request: Request) -> dict[str, Any]:
        ended = batch.status is not None
        if ended:
            counts = dict(batch.counts)
        else:
            counts = {"processing": batch.total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        status = "ended" if ended else "canceling" if batch.cancel_requested_at is not None else "in_progress"
        base = str(request.base_url).rstrip("/")
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": rfc3339(batch.terminal_at),
            "created_at": rfc3339(batch.created_at),
            "expires_at": rfc3339(batch.expires_at),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(batch.cancel_requested_at),
            "results_url": base + RESULTS_DOWNLOAD_PATH.format(batch_id=batch.id) if ended else None,
        }
