"""Writing a partition's requests in the OpenAI batch input format (what `vllm run-batch -i` reads):
one line per item, ``{"custom_id", "method": "POST", "url", "body"}``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from batch_pipelines.components.requests_for_partition import KEY_SEPARATOR, iter_planned
from batch_pipelines.components.submission import settled_request_keys
from batch_pipelines.pipeline.source import read_partition
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.providers.openai import ENDPOINTS, request_body
from batch_pipelines.storage.layout import StorageLayout


def partition_inputs(spec: PipelineSpec, layout: StorageLayout, partition_key: str) -> pl.DataFrame:
    """The materialized input partition, or (when it is not) the partition read from the source."""
    path = layout.partition_path("inputs", spec.name, partition_key)
    if path.exists():
        return pl.read_parquet(path)
    return read_partition(spec, partition_key, layout.workdir).accepted


def export_requests(
    spec: PipelineSpec, layout: StorageLayout, partition_key: str, out: Path, *, include_settled: bool = False
) -> int:
    """Write the partition's requests to ``out`` (replacing it) and return how many. Items already
    answered, or failed for good, for the same request are left out unless ``include_settled``."""
    answered, dead = settled_request_keys(spec, layout, partition_key)
    settled = set() if include_settled else set(answered.to_list()) | set(dead.to_list())
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines: list[bytes] = []
    for item in iter_planned(spec, partition_inputs(spec, layout, partition_key)):
        request = item.request
        if f"{request.id}{KEY_SEPARATOR}{item.request_hash}" in settled:
            continue
        record = {
            "custom_id": request.id,
            "method": "POST",
            "url": ENDPOINTS[request.kind],
            "body": request_body(spec.model, request, spec.response_schema),
        }
        lines.append((encode(record) + "\n").encode())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(b"".join(lines))
    os.replace(partial, out)  # a reader never sees half a file
    return len(lines)
