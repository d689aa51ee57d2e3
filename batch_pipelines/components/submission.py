"""Submitting one partition: render, skip what is already answered for the same request, hand the rest
to the engine under a job id derived from the request set, and return without waiting."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from duckdb import DuckDBPyConnection

from batch_pipelines.components.budget import submission_budget
from batch_pipelines.components.partition_repair import repair_unreadable_partition
from batch_pipelines.components.requests_for_partition import (
    SLICE_ROWS,
    ParquetRows,
    Rows,
    iter_requests,
    joined_keys,
    save_request_keys,
    submission_job_id,
    write_request_keys,
)
from batch_pipelines.engine import BatchJob, BatchManager
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.spilling import spilling_duckdb, sql_path
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


@dataclass(frozen=True)
class PendingKeys:
    """Which of a partition's keys need a request, decided in DuckDB over files (bounded memory)."""

    relation: str  # a SQL query of the pending (id, request_hash) pairs
    pending: int
    skipped_answered: int
    skipped_dead: int


def pending_keys(
    connection: DuckDBPyConnection,
    keys_file: Path,
    total: int,
    settled: tuple[Path | None, Path | None],
) -> PendingKeys:
    """The keys in `keys_file` that are neither answered (`settled[0]`, a results file) nor failed for good
    (`settled[1]`, a dead-letters file) for the same request hash."""
    keys = f"SELECT id, request_hash FROM read_parquet({sql_path(keys_file)})"
    answered_file, dead_file = settled
    if answered_file is None and dead_file is None:  # a first submission: everything is pending
        return PendingKeys(keys, total, 0, 0)
    answered = _settled_pairs(answered_file)
    dead = _settled_pairs(dead_file, "NOT transient")
    pending = (
        f"SELECT k.id, k.request_hash FROM ({keys}) k "
        f"ANTI JOIN ({answered}) a ON k.id = a.id AND k.request_hash = a.request_hash "
        f"ANTI JOIN ({dead}) d ON k.id = d.id AND k.request_hash = d.request_hash"
    )
    answered_count = f"SELECT count(*) FROM ({keys}) k SEMI JOIN ({answered}) a USING (id, request_hash)"
    pending_count, skipped_answered = (
        _count(connection, f"SELECT count(*) FROM ({pending})"),
        _count(connection, answered_count),
    )
    return PendingKeys(pending, pending_count, skipped_answered, total - pending_count - skipped_answered)


def _settled_pairs(path: Path | None, condition: str = "true") -> str:
    if path is None:
        return "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS request_hash WHERE false"
    return f"SELECT id, request_hash FROM read_parquet({sql_path(path)}) WHERE {condition}"


def _count(connection: DuckDBPyConnection, query: str) -> int:
    [(count,)] = connection.execute(query).fetchall()
    return int(count)


async def submit_partition(
    manager: BatchManager, spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> SubmissionOutcome:
    if not layout.partition_exists("inputs", spec.name, partition_key):
        raise MissingInputError(f"input partition {partition_key!r} of {spec.name!r} is not materialized")
    await repair_unreadable_partition(manager.store, spec, layout, partition_key)  # (logs what it rewrote)
    # Read twice, a slice at a time (hashes first, for the job id; then the requests), never whole; the
    # keys go to a file and are compared and sorted there, so memory does not grow with the partition.
    inputs: Rows = (
        ParquetRows(layout.partition_path("inputs", spec.name, partition_key))
        if layout.remote is None
        else layout.read_partition("inputs", spec.name, partition_key)
    )
    with scratch_folder(layout.workdir, ".submission-") as folder, spilling_duckdb(folder) as connection:
        keys_file = folder / "keys.parquet"
        total = write_request_keys(spec, inputs, keys_file)
        settled = (
            layout.local_partition_file("results", spec.name, partition_key, folder),
            layout.local_partition_file("dead_letters", spec.name, partition_key, folder),
        )
        plan = pending_keys(connection, keys_file, total, settled)
        if not plan.pending:
            return SubmissionOutcome(
                job=None, submitted=0, skipped_answered=plan.skipped_answered, skipped_dead=plan.skipped_dead
            )
        pending = inputs
        if plan.pending < total:  # (a resubmission: the pending ids are held, ~16 B each)
            pending_ids = connection.sql(f"SELECT id FROM ({plan.relation})").pl()["id"]
            pending = (
                replace(inputs, ids=pending_ids)
                if isinstance(inputs, ParquetRows)
                else inputs.filter(pl.col(spec.id_column).cast(pl.String).is_in(pending_ids.implode()))
            )
        budget = await submission_budget(manager.store, spec, now=datetime.now(UTC))
        sorted_keys = connection.sql(f"SELECT id, request_hash FROM ({plan.relation}) ORDER BY id")
        job_id = submission_job_id(spec, partition_key, sorted_keys.to_arrow_reader(SLICE_ROWS))
        save_request_keys(layout, spec, partition_key, keys_file, job_id)
    job = await manager.submit(
        iter_requests(spec, pending),
        job_id=job_id,
        metadata={"pipeline": spec.name, "partition_key": partition_key, "spec_version": spec_version(spec)},
        response_schema=spec.response_schema,
        max_cost_usd=budget.max_cost_usd,
        budget_note=budget.note,
    )
    return SubmissionOutcome(
        job=job,
        submitted=plan.pending,
        skipped_answered=plan.skipped_answered,
        skipped_dead=plan.skipped_dead,
    )
