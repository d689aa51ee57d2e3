"""What the cost and throughput report shows: the store's jobs and the dead-letter Parquet tables, from the
working folder or the shared store and tables (storage.locations)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from batch_pipelines.console.spend import JOB_LEVEL, SpendLine, level_value, spend_by
from batch_pipelines.engine import BatchJob, BatchStore
from batch_pipelines.engine.spend import SpendTotal
from batch_pipelines.storage.locations import DataLocations


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
    source: str  # where the figures come from: the working folder, or the shared store and tables
    points: list[JobPoint]
    by_partition: list[SpendLine]  # batch jobs and realtime calls together
    by_pipeline: list[SpendLine]
    by_pipeline_path: list[SpendLine]  # (pipeline, path): batch, realtime, packed, local
    by_job: list[SpendLine]  # batch jobs in submission order: each job's forecast beside its bill
    total: SpendLine | None
    realtime_total: SpendLine | None  # the realtime calls (realtime and packed paths) alone
    failures: list[tuple[str, str, int]]  # (pipeline, error_type, count)
    unreadable: list[str]  # one line per table file the figures leave out, naming its partition


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


def dead_letter_counts(locations: DataLocations) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Dead letters per pipeline and error type, read through the DuckDB views (local or on S3), and a
    line for each recorded table file that could not be read."""
    import duckdb

    from batch_pipelines.storage.views import create_views

    with duckdb.connect() as connection:
        sources = create_views(connection, locations.layout, locations.duckdb_s3())
        counts = connection.execute(
            "SELECT pipeline, error_type, count(*) AS n FROM dead_letters GROUP BY ALL "
            "ORDER BY n DESC, pipeline, error_type"
        ).fetchall()
    failures = [(str(pipeline), str(error_type), int(count)) for pipeline, error_type, count in counts]
    return failures, [file.message() for file in sources.unreadable]


def gather_report_data(locations: DataLocations, *, now: datetime) -> ReportData:
    jobs: list[BatchJob] = []
    calls: list[SpendTotal] = []
    if locations.store_exists():
        jobs, calls = asyncio.run(_read_store(locations.store_location()))
    jobs.sort(key=lambda job: job.created_at)
    total = spend_by(jobs, [], calls)
    realtime_total = spend_by([], [], calls)
    failures, unreadable = dead_letter_counts(locations)
    return ReportData(
        generated_at=now,
        source=_source(locations),
        points=[job_point(job) for job in jobs],
        by_partition=spend_by(jobs, ["pipeline", "partition_key", "model"], calls),
        by_pipeline=spend_by(jobs, ["pipeline"], calls),
        by_pipeline_path=spend_by(jobs, ["pipeline", "path"], calls),
        by_job=[line for job in jobs for line in spend_by([job], [JOB_LEVEL])],
        total=total[0] if total else None,
        realtime_total=realtime_total[0] if realtime_total else None,
        failures=failures,
        unreadable=unreadable,
    )


def _source(locations: DataLocations) -> str:
    """Where the figures come from, for the page (a store URL without its password)."""
    if locations.store_url is None and locations.storage_url is None:
        return f"Working folder {locations.workdir}"
    tables = locations.storage_url or str(locations.workdir)
    return f"Store {locations.describe_store()}, tables {tables}"


async def _read_store(location: str | Path) -> tuple[list[BatchJob], list[SpendTotal]]:
    from batch_pipelines.console.job_commands import all_jobs

    store = BatchStore(location)
    await store.initialize()
    try:
        return await all_jobs(store, open_only=False), await store.spend_totals()
    finally:
        await store.close()
