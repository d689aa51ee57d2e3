"""Answering one partition (or its urgent items) through the realtime path, into the partition's tables.

Each partition has its own work queue in `<workdir>/queues/<pipeline>.db`, named after the partition and
the spec version, so a re-run (or a run after a crash) resumes the same queue and never sends an item
that already has a result; a changed prompt or model gets a fresh queue. Items already answered for the
same request in the results file are not queued at all. The queue's results are merged into the same
results and dead-letter files the batch path writes (`write_partition_tables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batch_pipelines.components.collection import (
    PartitionTables,
    dead_row,
    dead_row_schema,
    result_row,
    results_row_schema,
    write_partition_tables,
)
from batch_pipelines.components.requests_for_partition import iter_planned, joined_keys, request_keys
from batch_pipelines.components.submission import MissingInputError, settled_request_keys
from batch_pipelines.engine.spend import REALTIME, SpendSink
from batch_pipelines.pipeline.context_windows import context_window
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.providers.realtime import RealtimeProvider
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import Packing, QueueItem, RealtimeSummary, WorkQueue, process_realtime
from batch_pipelines.storage.layout import StorageLayout

QUEUES_FOLDER = "queues"


class PriorityColumnError(ValueError):
    """The spec's priority column is missing from the input or holds no integers."""


@dataclass(frozen=True)
class RealtimePartitionOutcome:
    summary: RealtimeSummary
    queued: int
    skipped_settled: int
    tables: PartitionTables


def limiter_key(spec: PipelineSpec) -> str:
    """One budget per provider+model, whichever pipeline, run or partition draws on it."""
    return f"{spec.provider}:{spec.model}"


def queue_location(layout: StorageLayout, spec: PipelineSpec) -> Path:
    return layout.workdir / QUEUES_FOLDER / f"{spec.name}.db"


def queue_name(spec: PipelineSpec, partition_key: str) -> str:
    return f"{partition_key}:{spec_version(spec)}"


def realtime_job_id(spec: PipelineSpec, partition_key: str) -> str:
    """What the `job_id` column of realtime rows holds (no BatchStore job stands behind them)."""
    return f"realtime:{spec.name}:{partition_key}"


def packing_for(spec: PipelineSpec) -> Packing | None:
    if spec.realtime.items_per_prompt is None:
        return None
    window = context_window(spec.model)
    if window is None:
        return Packing(items_per_prompt=spec.realtime.items_per_prompt)
    return Packing(items_per_prompt=spec.realtime.items_per_prompt, context_window_tokens=window)


def priorities(inputs: pl.DataFrame, column: str | None, field: str) -> pl.Series:
    """Each row's priority (0 where null or no column is declared), or an error naming the spec field."""
    if column is None:
        return pl.Series("priority", [0] * inputs.height, dtype=pl.Int64)
    if column not in inputs.columns:
        raise PriorityColumnError(f"'{field}': the input has no column {column!r}")
    try:
        return inputs[column].cast(pl.Int64, strict=True).fill_null(0).alias("priority")
    except pl.exceptions.InvalidOperationError:
        raise PriorityColumnError(f"'{field}': column {column!r} does not hold integers") from None


async def answer_partition_realtime(
    spec: PipelineSpec,
    layout: StorageLayout,
    partition_key: str,
    *,
    provider_client: RealtimeProvider,
    limiter: RateLimiter | None,
    urgent_only: bool = False,
    spend: SpendSink | None = None,
) -> RealtimePartitionOutcome:
    """Queue the partition's unsettled items (with `urgent_only`, those at or above `urgent.threshold`),
    work the queue until no item is open, and write every queued item's result or dead letter. Every
    paid call goes to `spend` (the store's ledger, scoped to the partition)."""
    if not layout.partition_exists("inputs", spec.name, partition_key):
        raise MissingInputError(f"input partition {partition_key!r} of {spec.name!r} is not materialized")
    inputs = layout.read_partition("inputs", spec.name, partition_key)
    if urgent_only:
        assert spec.urgent is not None
        priority = priorities(inputs, spec.urgent.priority_column, "urgent.priority_column")
    else:
        priority = priorities(inputs, spec.realtime.priority_column, "realtime.priority_column")
    keys = request_keys(spec, inputs)
    answered_keys, dead_keys = settled_request_keys(spec, layout, partition_key)
    joined = joined_keys(keys)
    settled = joined.is_in(answered_keys.implode()) | joined.is_in(dead_keys.implode())
    if urgent_only and spec.urgent is not None:
        wanted = priority >= spec.urgent.threshold
    else:
        wanted = pl.Series([True] * inputs.height, dtype=pl.Boolean)
    pending = ~settled & wanted
    items = [
        QueueItem(planned.request, priority=int(rank))
        for planned, rank in zip(
            iter_planned(spec, inputs.filter(pending)), priority.filter(pending), strict=True
        )
    ]
    location = queue_location(layout, spec)
    location.parent.mkdir(parents=True, exist_ok=True)
    queue = WorkQueue(
        location, name=queue_name(spec, partition_key), max_attempts=spec.realtime.max_deliveries
    )
    try:
        summary = await process_realtime(
            items,
            provider_client=provider_client,
            limiter=limiter,
            queue=queue,
            concurrency=spec.realtime.concurrency,
            response_schema=spec.response_schema,
            packing=packing_for(spec),
            spend=spend,
        )
        outcomes = await queue.results()
    finally:
        await queue.close()

    version, job_id = spec_version(spec), realtime_job_id(spec, partition_key)
    answered_rows = [
        result_row(spec, partition_key, job_id, r, version, r.path or REALTIME) for r in outcomes if r.ok
    ]
    dead_rows = [dead_row(spec, partition_key, job_id, r) for r in outcomes if not r.ok]
    tables = write_partition_tables(
        spec,
        layout,
        partition_key,
        keys.lazy(),
        pl.DataFrame(answered_rows, schema=results_row_schema(spec)).lazy(),
        pl.DataFrame(dead_rows, schema=dead_row_schema()).lazy(),
        pl.LazyFrame({"id": [r.id for r in outcomes]}, schema={"id": pl.String}),
    )
    return RealtimePartitionOutcome(
        summary=summary,
        queued=len(items),
        skipped_settled=int((settled & wanted).sum()),
        tables=tables,
    )
