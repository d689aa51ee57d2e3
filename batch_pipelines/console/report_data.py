"""What the cost and throughput report shows, gathered from the working folder: the store's jobs and the
dead-letter Parquet tables."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from batch_pipelines.console.spend import SpendLine, level_value, spend_by
from batch_pipelines.engine import BatchJob, BatchStore
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import read_parquet_or_empty
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA


@dataclass(frozen=True)
class JobPoint:
    """One job on the time axis."""

    submitted_at: datetime
    pipeline: str
    partition_key: str
    model: str
    items: int
    items_per_hour: float | None
    cost_usd: float | None
    realtime_usd: float | None


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    workdir: Path
    points: list[JobPoint]
    by_partition: list[SpendLine]
    by_pipeline: list[SpendLine]
    total: SpendLine | None
    failures: list[tuple[str, str, int]]  # (pipeline, error_type, count)


def job_point(job: BatchJob) -> JobPoint:
    return JobPoint(
        submitted_at=job.created_at,
        pipeline=level_value(job, "pipeline"),
        partition_key=level_value(job, "partition_key"),
        model=level_value(job, "model"),
        items=job.progress.completed + job.progress.failed,
        items_per_hour=job.progress.items_per_hour,
        cost_usd=job.cost.actual_usd,
        realtime_usd=job.cost.realtime_usd,
    )


def dead_letter_counts(layout: StorageLayout) -> list[tuple[str, str, int]]:
    folder = layout.table_root("dead_letters")
    frames = [read_parquet_or_empty(path, DEAD_LETTERS_SCHEMA) for path in sorted(folder.glob("*/*.parquet"))]
    if not frames:
        return []
    counts = (
        pl.concat(frames, how="diagonal_relaxed")
        .group_by("pipeline", "error_type")
        .len()
        .sort(["len", "pipeline", "error_type"], descending=[True, False, False])
    )
    return [
        (str(pipeline), str(error_type), int(count)) for pipeline, error_type, count in counts.iter_rows()
    ]


def gather_report_data(workdir: Path, *, now: datetime) -> ReportData:
    layout = StorageLayout.for_workdir(workdir)
    jobs: list[BatchJob] = []
    if layout.store_path.exists():
        jobs = asyncio.run(_read_jobs(layout.store_path))
    jobs.sort(key=lambda job: job.created_at)
    total = spend_by(jobs, [])
    return ReportData(
        generated_at=now,
        workdir=workdir,
        points=[job_point(job) for job in jobs],
        by_partition=spend_by(jobs, ["pipeline", "partition_key", "model"]),
        by_pipeline=spend_by(jobs, ["pipeline"]),
        total=total[0] if total else None,
        failures=dead_letter_counts(layout),
    )


async def _read_jobs(path: Path) -> list[BatchJob]:
    from batch_pipelines.console.job_commands import all_jobs

    store = BatchStore(path)
    await store.initialize()
    try:
        return await all_jobs(store, open_only=False)
    finally:
        await store.close()
