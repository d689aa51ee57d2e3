"""Collecting a finished job into the partition's tables.

Successes become result rows; permanent failures, and transient ones past `max_attempts`, become dead
letters; transient failures within the bound are resubmitted through the engine as a new attempt (the
completion sensor then collects that attempt). Rows answered by earlier jobs are kept, so the results
file always covers the whole partition, and each file is replaced in one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from batch_pipelines.components.requests_for_partition import plan_requests
from batch_pipelines.engine import BatchJob, BatchManager, BatchResult, JobNotFinishedError
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import read_parquet_or_empty, write_parquet_atomic
from batch_pipelines.storage.tables import (
    DEAD_LETTERS_SCHEMA,
    RESULTS_SCHEMA,
    parse_response_fields,
    parsed_columns,
)


EMBEDDING_COLUMN = "embedding"  # an embedding pipeline's vectors, list[float] in Parquet and DuckDB


class JobStillRunningError(RuntimeError):
    """The job is not terminal yet; the completion sensor requests the results run when it is."""


@dataclass(frozen=True)
class CollectionOutcome:
    job: BatchJob
    results: pl.DataFrame
    dead_letters: pl.DataFrame
    answered_now: int
    dead_now: int
    resubmitted: int
    results_path: str


def results_frame_schema(spec: PipelineSpec) -> dict[str, pl.DataType]:
    embedding = {EMBEDDING_COLUMN: pl.List(pl.Float64())} if spec.kind == "embedding" else {}
    return {**RESULTS_SCHEMA, **parsed_columns(spec.response_schema), **embedding}


async def collect_partition(
    manager: BatchManager, spec: PipelineSpec, layout: StorageLayout, partition_key: str, job_id: str
) -> CollectionOutcome:
    job: BatchJob = await manager.get_job(job_id)
    if not job.status.is_terminal:
        raise JobStillRunningError(
            f"job {job_id!r} is {job.status.value} ({job.detail}); the completion sensor requests this "
            "partition's results run when it ends"
        )
    try:
        results: list[BatchResult] = [result async for result in manager.iter_results(job_id)]
    except JobNotFinishedError as error:  # reopened between the two calls (e.g. a concurrent retry)
        raise JobStillRunningError(str(error)) from None
    inputs = pl.read_parquet(layout.partition_path("inputs", spec.name, partition_key))
    hashes = {item.request.id: item.request_hash for item in plan_requests(spec, inputs)}
    version = spec_version(spec)

    answered, dead, retry = [], [], []
    for result in results:
        if result.ok:
            answered.append(result_row(spec, partition_key, job, result, hashes.get(result.id, ""), version))
        elif result.retryable and job.attempt < spec.max_attempts:
            retry.append(result)
        else:
            dead.append(dead_row(spec, partition_key, job, result, hashes.get(result.id, "")))

    job_ids = {result.id for result in results}
    schema = results_frame_schema(spec)
    results_path = layout.partition_path("results", spec.name, partition_key)
    earlier = read_parquet_or_empty(results_path, schema).filter(
        ~pl.col("id").is_in(list(job_ids)) & pl.col("id").is_in(list(hashes))
    )
    merged_results = pl.concat([earlier, pl.DataFrame(answered, schema=schema)], how="diagonal_relaxed")
    dead_path = layout.partition_path("dead_letters", spec.name, partition_key)
    answered_ids = set(merged_results["id"].to_list())
    earlier_dead = read_parquet_or_empty(dead_path, DEAD_LETTERS_SCHEMA).filter(
        ~pl.col("id").is_in(list(job_ids | answered_ids)) & pl.col("id").is_in(list(hashes))
    )
    merged_dead = pl.concat([earlier_dead, pl.DataFrame(dead, schema=DEAD_LETTERS_SCHEMA)])
    write_parquet_atomic(merged_results.sort("id"), results_path)
    write_parquet_atomic(merged_dead.sort("id"), dead_path)

    if retry:
        job = await manager.retry_failed(job_id)
    return CollectionOutcome(
        job=job,
        results=merged_results,
        dead_letters=merged_dead,
        answered_now=len(answered),
        dead_now=len(dead),
        resubmitted=len(retry),
        results_path=str(results_path),
    )


def result_row(
    spec: PipelineSpec, partition_key: str, job: BatchJob, result: BatchResult, item_hash: str, version: str
) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "partition_key": partition_key,
        "id": result.id,
        "response": result.response,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "attempt": result.attempt,
        "provider_batch_id": result.provider_batch_id,
        "job_id": job.id,
        "request_hash": item_hash,
        "spec_version": version,
        **parse_response_fields(result.response, spec.response_schema),
        **({EMBEDDING_COLUMN: result.embedding} if spec.kind == "embedding" else {}),
    }


def dead_row(
    spec: PipelineSpec, partition_key: str, job: BatchJob, result: BatchResult, item_hash: str
) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "partition_key": partition_key,
        "id": result.id,
        "error_type": result.error_type or "unknown",
        "error_message": result.error or "",
        "transient": result.retryable,
        "attempt": result.attempt,
        "job_id": job.id,
        "request_hash": item_hash,
    }
