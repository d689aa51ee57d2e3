"""Collecting a finished job into the partition's tables.

Successes become result rows; permanent failures, and transient ones past `max_attempts`, become dead
letters; transient failures within the bound are resubmitted through the engine as a new attempt (the
completion sensor then collects that attempt). Rows answered by earlier jobs are kept, so the results
file always covers the whole partition, and each file is replaced in one step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from batch_pipelines.components.requests_for_partition import (
    ParquetRows,
    iter_key_pairs,
    saved_request_keys_file,
    write_request_keys,
)
from batch_pipelines.engine import BatchJob, BatchManager, BatchResult, JobNotFinishedError
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.tables import (
    DEAD_LETTERS_SCHEMA,
    RESULTS_SCHEMA,
    parse_response_fields,
    parsed_columns,
)

# An embedding pipeline's vectors: list<float32> in Parquet, FLOAT[] in DuckDB. Not a fixed-size list:
# the results schema is declared from the spec before any vector exists, and the dimension belongs to
# the model (or to an OpenAI `dimensions` parameter), so every row's list has the model's length.
EMBEDDING_COLUMN = "embedding"
EMBEDDING_TYPE = pl.List(pl.Float32())
COLLECT_LOCK = "collect"  # the job lock a results run holds from reading the job to its resubmission


class JobStillRunningError(RuntimeError):
    """The job is not terminal yet; the completion sensor requests the results run when it is."""


@dataclass(frozen=True)
class PartitionTables:
    """A partition's results and dead-letter files just written, described without holding the results:
    a million answers stay on disk and are scanned for the checks."""

    results_path: str
    results: pl.LazyFrame
    result_count: int
    cost_usd: float
    dead_letters: pl.DataFrame


@dataclass(frozen=True)
class CollectionOutcome:
    job: BatchJob
    tables: PartitionTables
    answered_now: int
    dead_now: int
    resubmitted: int
    collected_elsewhere: bool = False  # another run collected this attempt and resubmitted; files as found


def batch_path(spec: PipelineSpec) -> str:
    """The `path` of rows a batch job answered: the local provider's, or a provider batch."""
    return "local" if spec.provider == "local" else "batch"


def results_frame_schema(spec: PipelineSpec) -> dict[str, pl.DataType]:
    embedding = {EMBEDDING_COLUMN: EMBEDDING_TYPE} if spec.kind == "embedding" else {}
    return {**RESULTS_SCHEMA, **parsed_columns(spec.response_schema), **embedding}


async def collect_partition(
    manager: BatchManager,
    spec: PipelineSpec,
    layout: StorageLayout,
    partition_key: str,
    job_id: str,
    attempt: int | None = None,
) -> CollectionOutcome:
    """Collect the job into the partition's files. Runs collecting one job take turns under the job's
    collect lock, held from reading the job to resubmitting its transient failures, so the second starts
    from what the first left, never from a state the first is still changing. `attempt` is the one this
    run was requested for: when the job is already past it, another run collected it and resubmitted, and
    this one reports the files as they are instead of failing; when the job is still at it, it is
    collected again from the store (no provider call), which rewrites the same rows."""
    async with manager.store.job_lock(job_id, COLLECT_LOCK):
        return await _collect_holding_lock(manager, spec, layout, partition_key, job_id, attempt)


async def _collect_holding_lock(
    manager: BatchManager,
    spec: PipelineSpec,
    layout: StorageLayout,
    partition_key: str,
    job_id: str,
    attempt: int | None,
) -> CollectionOutcome:
    job: BatchJob = await manager.get_job(job_id)
    if not job.status.is_terminal:
        if attempt is not None and job.attempt > attempt:
            return _collected_elsewhere(job, spec, layout, partition_key)
        raise JobStillRunningError(
            f"job {job_id!r} is {job.status.value} ({job.detail}); the completion sensor requests this "
            "partition's results run when it ends"
        )
    with scratch_folder(layout.workdir, ".collecting-") as folder:
        keys_file = saved_request_keys_file(layout, spec, partition_key, job_id, folder)
        if keys_file is None:  # submitted before keys were saved, or the partition has a later job since
            keys_file = folder / "keys.parquet"
            local_inputs = layout.local_partition_file("inputs", spec.name, partition_key, folder)
            inputs = (
                ParquetRows(local_inputs)
                if local_inputs
                else layout.read_partition("inputs", spec.name, partition_key)  # (raises, naming it)
            )
            write_request_keys(spec, inputs, keys_file)
        shared = {"pipeline": spec.name, "partition_key": partition_key, "job_id": job.id}
        answered = ColumnSpool(
            folder / "answered",
            results_frame_schema(spec),
            result_row_columns(spec),
            {**shared, "spec_version": spec_version(spec), "path": batch_path(spec)},
        )
        dead = ColumnSpool(folder / "dead", DEAD_LETTERS_SCHEMA, DEAD_LETTER_COLUMNS, shared)
        collected_ids = ColumnSpool(folder / "ids", {"id": pl.String()}, ["id"])
        hashes = HashCursor(iter_key_pairs(keys_file))
        retry = 0
        try:
            async for result in manager.iter_results(job_id):
                collected_ids.append((result.id,))
                request_hash = hashes.hash_of(result.id)
                if result.ok:
                    answered.append(result_row_values(spec, result, request_hash))
                elif result.retryable and job.attempt < spec.max_attempts:
                    retry += 1
                else:
                    dead.append(dead_letter_values(result, request_hash))
        except JobNotFinishedError as error:  # reopened between the two calls (e.g. a concurrent retry)
            job = await manager.get_job(job_id)
            if attempt is not None and job.attempt > attempt:
                return _collected_elsewhere(job, spec, layout, partition_key)
            raise JobStillRunningError(str(error)) from None
        answered_rows, dead_rows = answered.scan(), dead.scan()
        if not hashes.in_step:  # the join finds them instead
            answered_rows, dead_rows = answered_rows.drop("request_hash"), dead_rows.drop("request_hash")
        tables = write_partition_tables(
            spec,
            layout,
            partition_key,
            pl.scan_parquet(keys_file),
            answered_rows,
            dead_rows,
            collected_ids.scan(),
        )
    if retry:
        job = await manager.retry_failed(job_id)
    return CollectionOutcome(
        job=job, tables=tables, answered_now=answered.height, dead_now=dead.height, resubmitted=retry
    )


def write_partition_tables(
    spec: PipelineSpec,
    layout: StorageLayout,
    partition_key: str,
    keys: pl.LazyFrame,
    answered: pl.LazyFrame,
    dead: pl.LazyFrame,
    collected_ids: pl.LazyFrame,
) -> PartitionTables:
    """Merge newly collected result and dead-letter rows into the partition's files and replace each in
    one step; rows of earlier collections for other ids stay. `keys` holds the partition's `id` and
    `request_hash` columns (joined on when the rows lack `request_hash`); `collected_ids` (an `id`
    column) every id this collection decided. The results are streamed from the new rows and the old
    file into the new file, never held whole; the id sets are read only when there are earlier rows to
    merge."""
    schema = results_frame_schema(spec)
    hashes = keys.select("id", "request_hash").unique("id", keep="first")
    answered_now = (
        _with_request_hash(answered, hashes)
        .select(list(schema))
        .with_columns(pl.col("request_hash").fill_null(""))
    )
    merged_results = answered_now
    if layout.partition_exists("results", spec.name, partition_key):
        earlier = _still_standing(
            layout.scan_partition("results", spec.name, partition_key, schema=schema), keys, collected_ids
        )
        if EMBEDDING_COLUMN in schema:  # files written before vectors were float32 hold list<double>
            earlier = earlier.with_columns(pl.col(EMBEDDING_COLUMN).cast(EMBEDDING_TYPE))
        merged_results = pl.concat([earlier, answered_now], how="diagonal_relaxed")
    layout.write_partition(merged_results, "results", spec.name, partition_key)
    results = layout.scan_partition("results", spec.name, partition_key, schema=schema)

    dead_now = (
        _with_request_hash(dead, hashes)
        .select(list(DEAD_LETTERS_SCHEMA))
        .with_columns(pl.col("request_hash").fill_null(""))
    )
    merged_dead = dead_now.sort("id").collect()
    earlier_dead = layout.read_partition("dead_letters", spec.name, partition_key, schema=DEAD_LETTERS_SCHEMA)
    if earlier_dead.height:
        answered_ids = results.select("id")
        still_dead = _still_standing(earlier_dead.lazy(), keys, collected_ids).join(
            answered_ids, on="id", how="anti", maintain_order="left"
        )
        merged_dead = pl.concat([still_dead.collect(), merged_dead]).sort("id")
    layout.write_partition(merged_dead, "dead_letters", spec.name, partition_key)
    return partition_tables(spec, layout, partition_key, merged_dead)


def _still_standing(earlier: pl.LazyFrame, keys: pl.LazyFrame, collected_ids: pl.LazyFrame) -> pl.LazyFrame:
    """Earlier rows whose id this collection did not decide again and that is still an input."""
    return earlier.join(collected_ids.select("id"), on="id", how="anti", maintain_order="left").join(
        keys.select("id"), on="id", how="semi", maintain_order="left"
    )


def partition_tables(
    spec: PipelineSpec, layout: StorageLayout, partition_key: str, dead_letters: pl.DataFrame | None = None
) -> PartitionTables:
    """The partition's files as they are now (the dead letters read unless given)."""
    results = layout.scan_partition("results", spec.name, partition_key, schema=results_frame_schema(spec))
    result_count, cost_usd = results.select(pl.len(), pl.col("cost_usd").sum()).collect().row(0)
    if dead_letters is None:
        dead_letters = layout.read_partition(
            "dead_letters", spec.name, partition_key, schema=DEAD_LETTERS_SCHEMA
        )
    return PartitionTables(
        results_path=layout.partition_location("results", spec.name, partition_key),
        results=results,
        result_count=int(result_count),
        cost_usd=float(cost_usd or 0.0),
        dead_letters=dead_letters,
    )


def _collected_elsewhere(
    job: BatchJob, spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> CollectionOutcome:
    tables = partition_tables(spec, layout, partition_key)
    return CollectionOutcome(
        job=job, tables=tables, answered_now=0, dead_now=0, resubmitted=0, collected_elsewhere=True
    )


def _with_request_hash(rows: pl.LazyFrame, hashes: pl.LazyFrame) -> pl.LazyFrame:
    """Rows that lack a `request_hash` column get it from the keys (a hash join: ~100 B a key)."""
    if "request_hash" in rows.collect_schema():
        return rows
    return rows.join(hashes, on="id", how="left", maintain_order="left")


class HashCursor:
    """The request hash of each collected id, found by walking the keys in step with the results: both
    are in input order (a job's results come back in submission order, a subsequence of the keys), so
    no id-to-hash table is built. An id out of step ends the walk (`in_step` False): the hashes are
    then joined on afterwards."""

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        self._pairs = iter(keys)
        self.in_step = True

    def hash_of(self, item_id: str) -> str | None:
        if self.in_step:
            for key_id, key_hash in self._pairs:
                if key_id == item_id:
                    return str(key_hash)
            self.in_step = False
        return None


def results_row_schema(spec: PipelineSpec) -> dict[str, pl.DataType]:
    """The columns `result_row` fills (the results schema less `request_hash`)."""
    return {name: dtype for name, dtype in results_frame_schema(spec).items() if name != "request_hash"}


def dead_row_schema() -> dict[str, pl.DataType]:
    """The columns `dead_row` fills."""
    return {name: dtype for name, dtype in DEAD_LETTERS_SCHEMA.items() if name != "request_hash"}


class ColumnSpool:
    """Rows written to Parquet part files a page at a time, gathered as one list per column: a million
    results are never a million dicts, nor one frame, in memory. `columns` are the values each row
    brings (in `append` order); `constants` are the columns every row shares, added once a page."""

    PAGE = 20_000

    def __init__(
        self,
        folder: Path,
        schema: dict[str, pl.DataType],
        columns: Sequence[str],
        constants: dict[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.schema = schema
        self.constants = constants or {}
        missing = set(schema) - set(columns) - set(self.constants)
        if missing or len(columns) + len(self.constants) != len(schema):
            raise ValueError(f"columns and constants must cover {list(schema)} once each")
        self._page_schema = {name: schema[name] for name in columns}
        self._lists: list[list[Any]] = [[] for _ in columns]
        self._pending = 0
        self.height = 0
        self._parts: list[Path] = []

    def append(self, values: Sequence[Any]) -> None:
        """One row: its values of `columns`, in that order."""
        for column, value in zip(self._lists, values, strict=True):
            column.append(value)
        self._pending += 1
        self.height += 1
        if self._pending >= self.PAGE:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        page = pl.DataFrame(dict(zip(self._page_schema, self._lists, strict=True)), schema=self._page_schema)
        page = page.with_columns(
            pl.lit(value, self.schema[name]).alias(name) for name, value in self.constants.items()
        ).select(list(self.schema))
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"{len(self._parts):06d}.parquet"
        page.write_parquet(part, compression="lz4")
        self._parts.append(part)
        self._lists = [[] for _ in self._lists]
        self._pending = 0

    def scan(self) -> pl.LazyFrame:
        """Every row appended, in order (valid while the folder exists)."""
        self._flush()
        if not self._parts:
            return pl.LazyFrame(schema=self.schema)
        return pl.scan_parquet(self._parts, schema=self.schema)


# The columns of a result row and of a dead letter that differ from row to row, in the order
# `result_row_values` and `dead_letter_values` give them.
RESULT_ROW_COLUMNS = (
    "id",
    "response",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "attempt",
    "provider_batch_id",
    "request_hash",
    "cached_input_tokens",
    "cache_write_input_tokens",
)
DEAD_LETTER_COLUMNS = ("id", "error_type", "error_message", "transient", "attempt", "request_hash")


def result_row_columns(spec: PipelineSpec) -> list[str]:
    embedding = [EMBEDDING_COLUMN] if spec.kind == "embedding" else []
    return [*RESULT_ROW_COLUMNS, *parsed_columns(spec.response_schema), *embedding]


def result_row_values(spec: PipelineSpec, result: BatchResult, request_hash: str | None) -> tuple[Any, ...]:
    """A successful result's values of `result_row_columns(spec)`, in that order."""
    values: tuple[Any, ...] = (
        result.id,
        result.response,
        result.input_tokens,
        result.output_tokens,
        result.cost_usd,
        result.attempt,
        result.provider_batch_id,
        request_hash,
        result.cached_input_tokens,
        result.cache_write_input_tokens,
    )
    if spec.response_schema:
        values += tuple(parse_response_fields(result.response, spec.response_schema).values())
    if spec.kind == "embedding":
        values += (result.embedding,)
    return values


def dead_letter_values(result: BatchResult, request_hash: str | None) -> tuple[Any, ...]:
    """A failed result's values of DEAD_LETTER_COLUMNS, in that order."""
    return (
        result.id,
        result.error_type or "unknown",
        result.error or "",
        result.retryable,
        result.attempt,
        request_hash,
    )


def result_row(
    spec: PipelineSpec, partition_key: str, job_id: str, result: BatchResult, version: str, path: str
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
        "job_id": job_id,
        "spec_version": version,
        "path": path,
        "cached_input_tokens": result.cached_input_tokens,
        "cache_write_input_tokens": result.cache_write_input_tokens,
        **parse_response_fields(result.response, spec.response_schema),
        **({EMBEDDING_COLUMN: result.embedding} if spec.kind == "embedding" else {}),
    }


def dead_row(spec: PipelineSpec, partition_key: str, job_id: str, result: BatchResult) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "partition_key": partition_key,
        "id": result.id,
        "error_type": result.error_type or "unknown",
        "error_message": result.error or "",
        "transient": result.retryable,
        "attempt": result.attempt,
        "job_id": job_id,
    }
