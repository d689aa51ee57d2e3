"""The model requests one input partition stands for, each with the hash of what shapes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import polars as pl

from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.pipeline.requests import render_messages, request_hash, spec_version
from batch_pipelines.pipeline.spec import PipelineSpec

_REQUEST_FIELDS = ("max_tokens", "temperature")


@dataclass(frozen=True)
class PlannedRequest:
    request: BatchRequest
    request_hash: str


def plan_requests(spec: PipelineSpec, inputs: pl.DataFrame) -> list[PlannedRequest]:
    version = spec_version(spec)
    passthrough = {key: value for key, value in spec.params.items() if key not in _REQUEST_FIELDS}
    planned = []
    for row in inputs.iter_rows(named=True):
        messages = render_messages(spec, row)
        if spec.kind == "embedding":
            request = BatchRequest(id=str(row[spec.id_column]), input=messages[-1]["content"])
            planned.append(PlannedRequest(request=request, request_hash=request_hash(version, messages)))
            continue
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        user_messages: list[dict[str, Any]] = [message for message in messages if message["role"] != "system"]
        request = BatchRequest(
            id=str(row[spec.id_column]),
            messages=user_messages,
            system=system,
            max_tokens=spec.params.get("max_tokens"),
            temperature=spec.params.get("temperature"),
            params=dict(passthrough),
        )
        planned.append(PlannedRequest(request=request, request_hash=request_hash(version, messages)))
    return planned


def submission_job_id(spec: PipelineSpec, partition_key: str, planned: list[PlannedRequest]) -> str:
    """Stable for the same set of requests, so re-running a submission never submits twice."""
    digest = hashlib.sha256()
    for item in sorted(planned, key=lambda item: item.request.id):
        digest.update(f"{item.request.id}\x1f{item.request_hash}\x1e".encode())
    return f"{spec.name}.{partition_key}.{digest.hexdigest()[:12]}"
