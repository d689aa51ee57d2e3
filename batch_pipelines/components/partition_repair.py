"""Rewriting a partition's results and dead-letter files from what was collected, when a file cannot be
read (truncated, overwritten, not Parquet).

The store keeps every answer each job collected, so nothing needs asking again: the unreadable file is
moved aside (kept as `<file>.unreadable-<time>` for a look), and the partition's files are written anew
from the results of every job of the partition, the latest job's answer winning for an id. Answers of a
job submitted under the current spec get their request hash back from the inputs (so the next submission
skips them); those of an older spec version keep an empty hash and are asked again, as before.
Answers only the realtime path gave are not in the store; a re-run asks for those again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batch_pipelines.components.collection import (
    DEAD_LETTER_COLUMNS,
    ColumnSpool,
    batch_path,
    dead_letter_values,
    result_row_columns,
    result_row_values,
    results_frame_schema,
    write_partition_tables,
)
from batch_pipelines.components.requests_for_partition import ParquetRows, write_request_keys
from batch_pipelines.engine import BatchJob, BatchStore
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA

logger = logging.getLogger(__name__)
REPAIRED_TABLES = ("results", "dead_letters")
JobSpan = tuple[str, str, int, int]  # (job id, spec version, first row, end row) of a job's rows in a spool


def unreadable_reason(path: Path) -> str | None:
    """Why `path` is not a readable Parquet file (its footer and schema), or None when it is."""
    try:
        pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        return str(error).splitlines()[0]
    return None


async def repair_unreadable_partition(
    store: BatchStore, spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> list[str]:
    """When the partition's results or dead-letter file cannot be read, rewrite both from the store;
    returns a line for each file moved aside (empty when all was readable, or the tables are on S3)."""
    if layout.remote is not None:
        return []
    broken = []
    for table in REPAIRED_TABLES:
        path = layout.partition_path(table, spec.name, partition_key)
        if path.exists() and (reason := unreadable_reason(path)) is not None:
            broken.append((path, reason))
    if not broken:
        return []
    notes = []
    for path, reason in broken:
        kept = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        path.rename(kept)
        notes.append(
            f"{path} was unreadable ({reason}); moved to {kept} and rewritten from the collected results"
        )
        logger.warning(notes[-1])
    await _rewrite_from_store(store, spec, layout, partition_key)
    return notes


async def _partition_jobs(store: BatchStore, spec: PipelineSpec, partition_key: str) -> list[BatchJob]:
    found: list[BatchJob] = []
    cursor: str | None = None
    while page := await store.list_jobs(after=cursor, limit=500):
        found += [
            job
            for job in page
            if job.metadata.get("pipeline") == spec.name
            and job.metadata.get("partition_key") == partition_key
        ]
        cursor = page[-1].id
    return sorted(found, key=lambda job: job.created_at)


async def _rewrite_from_store(
    store: BatchStore, spec: PipelineSpec, layout: StorageLayout, partition_key: str
) -> None:
    current = spec_version(spec)
    with scratch_folder(layout.workdir, ".repair-") as folder:
        keys_file = folder / "keys.parquet"
        write_request_keys(
            spec, ParquetRows(layout.partition_path("inputs", spec.name, partition_key)), keys_file
        )
        answered = ColumnSpool(
            folder / "answered",
            results_frame_schema(spec),
            result_row_columns(spec),
            {
                "pipeline": spec.name,
                "partition_key": partition_key,
                "job_id": "",
                "spec_version": "",
                "path": batch_path(spec),
            },
        )
        dead = ColumnSpool(
            folder / "dead",
            DEAD_LETTERS_SCHEMA,
            DEAD_LETTER_COLUMNS,
            {"pipeline": spec.name, "partition_key": partition_key, "job_id": ""},
        )
        answered_spans: list[JobSpan] = []
        dead_spans: list[JobSpan] = []
        for job in await _partition_jobs(store, spec, partition_key):
            version = job.metadata.get("spec_version", "")
            first_answered, first_dead = answered.height, dead.height
            pages = store.result_pages(job.id)
            while (page := await store.next_page(pages)) is not None:
                for _request_id, result in page:
                    if result is None:
                        continue
                    if result.ok:
                        answered.append(result_row_values(spec, result, None))
                    elif not result.retryable:
                        dead.append(dead_letter_values(result, None))
            answered_spans.append((job.id, version, first_answered, answered.height))
            dead_spans.append((job.id, version, first_dead, dead.height))
        keys = pl.scan_parquet(keys_file)
        results = _owned(answered.scan(), answered_spans, keys, current)
        dead_rows = _owned(dead.scan(), dead_spans, keys, current).join(
            results.select("id"), on="id", how="anti"
        )
        write_partition_tables(
            spec,
            layout,
            partition_key,
            keys,
            results,
            dead_rows,
            pl.concat([results.select("id"), dead_rows.select("id")]),
        )


def _owned(rows: pl.LazyFrame, owners: list[JobSpan], keys: pl.LazyFrame, current: str) -> pl.LazyFrame:
    """Rows labelled with the job and spec version that collected them, one per id (the latest job's),
    with the request hash from `keys` for the current spec version and '' otherwise."""
    row_number = pl.int_range(pl.len(), dtype=pl.Int64)
    job_of = pl.lit("", dtype=pl.String)
    version_of = pl.lit("", dtype=pl.String)
    for job_id, version, start, end in owners:
        inside = row_number.is_between(start, end, closed="left")
        job_of = pl.when(inside).then(pl.lit(job_id)).otherwise(job_of)
        version_of = pl.when(inside).then(pl.lit(version)).otherwise(version_of)
    labelled = rows.with_columns(job_id=job_of, spec_version=version_of).unique(
        "id", keep="last", maintain_order=True
    )
    hashes = keys.select("id", pl.col("request_hash").alias("_key_hash")).unique("id", keep="first")
    matched = pl.when(pl.col("spec_version") == current).then(pl.col("_key_hash")).otherwise(pl.lit(""))
    joined = labelled.join(hashes, on="id", how="left", maintain_order="left")
    return joined.with_columns(request_hash=matched.fill_null("")).drop("_key_hash")
