"""Submitting one partition: render, skip what is already answered for the same request, hand the rest
to the engine under a job id derived from the request set, and return without waiting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from batch_pipelines.components.budget import submission_budget
from batch_pipelines.components.requests_for_partition import PlannedRequest, plan_requests, submission_job_id
from batch_pipelines.engine import BatchJob, BatchManager
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import read_parquet_or_empty
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA, RESULTS_SCHEMA


class MissingInputError(RuntimeError):
    """The input partition has not been materialized yet."""


@dataclass(frozen=True)
class SubmissionOutcome:
    job: BatchJob | None
    submitted: int
    skipped_answered: int
    skipped_dead: int


RequestKey = tuple[str, str]


def _key(item: PlannedRequest) -> RequestKey:
    return (item.request.id, item.request_hash)


def settled_request_keys(
    spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> tuple[set[RequestKey], set[RequestKey]]:
    """(id, request hash) pairs that need no new request: those answered, and those failed for good."""
    results = read_parquet_or_empty(
        layout.partition_path("results", spec.name, partition_key), RESULTS_SCHEMA
    )
    dead = read_parquet_or_empty(
        layout.partition_path("dead_letters", spec.name, partition_key), DEAD_LETTERS_SCHEMA
    ).filter(~pl.col("transient"))
    answered: set[RequestKey] = set(results.select("id", "request_hash").iter_rows())
    failed_for_good: set[RequestKey] = set(dead.select("id", "request_hash").iter_rows())
    return answered, failed_for_good


async def submit_partition(
    manager: BatchManager, spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> SubmissionOutcome:
    input_path = layout.partition_path("inputs", spec.name, partition_key)
    if not input_path.exists():
        raise MissingInputError(f"input partition {partition_key!r} of {spec.name!r} is not materialized")
    planned = plan_requests(spec, pl.read_parquet(input_path))
    answered, failed_for_good = settled_request_keys(spec, layout, partition_key)
    settled = answered | failed_for_good
    pending = [item for item in planned if _key(item) not in settled]
    skipped_answered = sum(1 for item in planned if _key(item) in answered)
    skipped_dead = len(planned) - len(pending) - skipped_answered
    if not pending:
        return SubmissionOutcome(
            job=None, submitted=0, skipped_answered=skipped_answered, skipped_dead=skipped_dead
        )
    budget = await submission_budget(manager.store, spec, now=datetime.now(UTC))
    job = await manager.submit(
        [item.request for item in pending],
        job_id=submission_job_id(spec, partition_key, pending),
        metadata={"pipeline": spec.name, "partition_key": partition_key, "spec_version": spec_version(spec)},
        response_schema=spec.response_schema,
        max_cost_usd=budget.max_cost_usd,
        budget_note=budget.note,
    )
    return SubmissionOutcome(
        job=job, submitted=len(pending), skipped_answered=skipped_answered, skipped_dead=skipped_dead
    )
