"""Submitting one partition: render, skip what is already answered for the same request, hand the rest
to the engine under a job id derived from the request set, and return without waiting."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import polars as pl

from batch_pipelines.components.budget import submission_budget
from batch_pipelines.components.requests_for_partition import (
    ParquetRows,
    Rows,
    iter_requests,
    joined_keys,
    request_keys,
    save_request_keys,
    submission_job_id,
)
from batch_pipelines.engine import BatchJob, BatchManager
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA, RESULTS_SCHEMA


class MissingInputError(RuntimeError):
    """The input partition has not been materialized yet."""


@dataclass(frozen=True)
class SubmissionOutcome:
    job: BatchJob | None
    submitted: int
    skipped_answered: int
    skipped_dead: int


def settled_request_keys(
    spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> tuple[pl.Series, pl.Series]:
    """Joined (id, request hash) keys that need no new request: those answered, and those failed for good."""
    key_columns = ["id", "request_hash"]
    results = layout.read_partition(
        "results", spec.name, partition_key, schema=RESULTS_SCHEMA, columns=key_columns
    )
    dead = layout.read_partition(
        "dead_letters",
        spec.name,
        partition_key,
        schema=DEAD_LETTERS_SCHEMA,
        columns=[*key_columns, "transient"],
    )
    dead = dead.filter(~pl.col("transient"))
    return joined_keys(results), joined_keys(dead)


async def submit_partition(
    manager: BatchManager, spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> SubmissionOutcome:
    if not layout.partition_exists("inputs", spec.name, partition_key):
        raise MissingInputError(f"input partition {partition_key!r} of {spec.name!r} is not materialized")
    # Read twice, a slice at a time (hashes first, for the job id; then the requests), never whole.
    inputs: Rows = (
        ParquetRows(layout.partition_path("inputs", spec.name, partition_key))
        if layout.remote is None
        else layout.read_partition("inputs", spec.name, partition_key)
    )
    keys = request_keys(spec, inputs)
    answered_keys, dead_keys = settled_request_keys(spec, layout, partition_key)
    pending_keys, skipped_answered, skipped_dead = keys, 0, 0
    if answered_keys.len() or dead_keys.len():  # (a first submission builds no joined keys)
        joined = joined_keys(keys)
        answered = joined.is_in(answered_keys.implode())
        pending_mask = ~(answered | joined.is_in(dead_keys.implode()))
        del joined
        pending_keys = keys.filter(pending_mask)
        skipped_answered = int(answered.sum())
        skipped_dead = keys.height - pending_keys.height - skipped_answered
    submitted = pending_keys.height
    if not submitted:
        return SubmissionOutcome(
            job=None, submitted=0, skipped_answered=skipped_answered, skipped_dead=skipped_dead
        )
    pending = inputs
    if submitted < keys.height:
        pending = (
            replace(inputs, ids=pending_keys["id"])
            if isinstance(inputs, ParquetRows)
            else inputs.filter(pl.col(spec.id_column).cast(pl.String).is_in(pending_keys["id"].implode()))
        )
    budget = await submission_budget(manager.store, spec, now=datetime.now(UTC))
    job_id = submission_job_id(spec, partition_key, pending_keys)
    save_request_keys(layout, spec, partition_key, keys, job_id)
    job = await manager.submit(
        iter_requests(spec, pending),
        job_id=job_id,
        metadata={"pipeline": spec.name, "partition_key": partition_key, "spec_version": spec_version(spec)},
        response_schema=spec.response_schema,
        max_cost_usd=budget.max_cost_usd,
        budget_note=budget.note,
    )
    return SubmissionOutcome(
        job=job, submitted=submitted, skipped_answered=skipped_answered, skipped_dead=skipped_dead
    )
