"""DuckDB views over the Parquet tree and the store snapshots: `results`, `dead_letters`, `rejects`,
`jobs`, `spend` (the realtime path's paid calls) and `costs` (batch jobs and realtime spend, by path).

Local tables are the files the partition catalog records (storage.partition_catalog), scanned as Arrow
datasets; tables on S3 are read by glob through a read-only filesystem. A table with no file yet is an
empty relation with the table's columns, so queries work on a fresh working folder too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from batch_pipelines.storage.confined_s3 import ConfinedReadOnlyS3
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.partition_catalog import PartitionFile, recorded_files
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA, REJECTS_SCHEMA, RESULTS_SCHEMA

JOBS_SCHEMA: dict[str, pl.DataType] = {
    "job_id": pl.String(),
    "pipeline": pl.String(),
    "partition_key": pl.String(),
    "status": pl.String(),
    "detail": pl.String(),
    "attempt": pl.Int64(),
    "provider_batch_ids": pl.String(),
    "total": pl.Int64(),
    "completed": pl.Int64(),
    "failed": pl.Int64(),
    "percent": pl.Float64(),
    "estimated_usd": pl.Float64(),
    "actual_usd": pl.Float64(),
    "realtime_usd": pl.Float64(),
    "saved_usd": pl.Float64(),
    "path": pl.String(),  # "batch", or "local" for the local provider's jobs
    "expected_usd": pl.Float64(),  # the cost forecast made before submission (engine.forecast)
    "worst_case_usd": pl.Float64(),
    "forecast_basis": pl.String(),
}

SPEND_SCHEMA: dict[str, pl.DataType] = {
    "pipeline": pl.String(),
    "partition_key": pl.String(),
    "job_id": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "path": pl.String(),  # "realtime" or "packed"
    "calls": pl.Int64(),
    "items": pl.Int64(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),
}

_COSTS = """
CREATE OR REPLACE VIEW costs AS
SELECT pipeline, partition_key, job_id, status, estimated_usd, actual_usd, realtime_usd, saved_usd,
       {jobs_path} AS path, {jobs_forecast}
FROM jobs
UNION ALL
SELECT pipeline, partition_key, job_id, 'spent', NULL, cost_usd, cost_usd, 0.0, path, {no_forecast}
FROM spend
"""
# Batch jobs are forecast before submission; realtime calls (and a snapshot from before forecasts) not.
_FORECAST = "expected_usd, worst_case_usd, forecast_basis"
_NO_FORECAST = "NULL::DOUBLE AS expected_usd, NULL::DOUBLE AS worst_case_usd, NULL::VARCHAR AS forecast_basis"

_VIEW_TABLES = ("results", "dead_letters", "rejects")

_DUCKDB_TYPES = {
    pl.String(): "VARCHAR",
    pl.Int64(): "BIGINT",
    pl.Float64(): "DOUBLE",
    pl.Boolean(): "BOOLEAN",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_relation(schema: dict[str, pl.DataType]) -> str:
    columns = ", ".join(f'NULL::{_DUCKDB_TYPES[dtype]} AS "{name}"' for name, dtype in schema.items())
    return f"SELECT {columns} WHERE false"


@dataclass(frozen=True)
class UnreadableFile:
    """A recorded partition file the views leave out, and why (e.g. truncated or not Parquet)."""

    table: str
    pipeline: str
    partition_key: str
    path: Path
    reason: str

    def message(self) -> str:
        return (
            f"{self.table} file {self.path} (pipeline {self.pipeline!r}, partition {self.partition_key!r}) "
            f"is unreadable: {self.reason}; the {self.table} view leaves it out until a re-run of the "
            "partition rewrites it"
        )


@dataclass
class ViewSources:
    """What the views read: the view definitions (SQL), the Arrow datasets they name, and the unreadable
    recorded files they leave out."""

    relations: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, ds.Dataset | pa.Table] = field(default_factory=dict)
    unreadable: list[UnreadableFile] = field(default_factory=list)

    def register(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Make the datasets scannable on ``connection`` (each connection needs its own registration)."""
        for name, dataset in self.datasets.items():
            connection.register(name, dataset)

    jobs_columns: set[str] = field(default_factory=lambda: set(JOBS_SCHEMA))  # an older snapshot has fewer

    def define(self, connection: duckdb.DuckDBPyConnection) -> None:
        for name, relation in self.relations.items():
            connection.execute(f"CREATE OR REPLACE VIEW {name} AS {relation}")
        connection.execute(costs_view(self.jobs_columns))


def costs_view(jobs_columns: set[str]) -> str:
    """The `costs` view over the jobs snapshot's columns (a snapshot from before `path` or the forecast
    columns reads them as 'batch' and NULL)."""
    return _COSTS.format(
        jobs_path="path" if "path" in jobs_columns else "'batch'",
        jobs_forecast=_FORECAST if "expected_usd" in jobs_columns else _NO_FORECAST,
        no_forecast=_NO_FORECAST,
    )


def _readable_schema(path: Path) -> pa.Schema:
    """The file's schema, read from its footer; raises OSError/ArrowInvalid when it is not a whole
    Parquet file."""
    return pq.read_schema(path)


def _local_dataset(
    table: str, files: list[PartitionFile], schema: dict[str, pl.DataType], sources: ViewSources
) -> str:
    """The table's readable recorded files as one Arrow dataset, and the relation over it: DuckDB scans a
    registered dataset without opening a file itself, so a query connection needs no file access."""
    readable: list[tuple[Path, pa.Schema]] = []
    for file in files:
        try:
            readable.append((file.path, _readable_schema(file.path)))
        except (OSError, pa.ArrowException) as error:
            reason = "the file is missing" if not file.path.exists() else str(error).splitlines()[0]
            sources.unreadable.append(
                UnreadableFile(table, file.pipeline, file.partition_key, file.path, reason)
            )
    if not readable:
        return _empty_relation(schema)
    unified = pa.unify_schemas([found for _, found in readable], promote_options="permissive")
    source = f"{table}_files"
    sources.datasets[source] = ds.dataset(
        [str(path) for path, _ in readable], schema=unified, format="parquet"
    )
    return f"SELECT * FROM {source}"


def _s3_parquet_relation(
    s3: AbstractFileSystem, layout: StorageLayout, table: str, schema: dict[str, pl.DataType]
) -> str:
    assert layout.remote is not None
    folder = layout.remote.location.key(table)
    if not s3.glob(f"{layout.remote.location.bucket}/{folder}/*/*.parquet"):
        return _empty_relation(schema)
    pattern = _quote(layout.remote.location.uri(table, "*", "*.parquet"))
    return f"SELECT * FROM read_parquet({pattern}, union_by_name = true)"


def view_sources(layout: StorageLayout, s3: AbstractFileSystem | None = None) -> ViewSources:
    """What the views read. Local tables are the files the partition catalog records (see
    storage.partition_catalog), wherever each spec's results root put them; a recorded file that cannot
    be read is left out and listed in `unreadable`. Tables on S3 are read through ``s3`` (see
    storage.s3_tables.duckdb_filesystem), which the connection must have registered."""
    sources = ViewSources()
    schemas = {"results": RESULTS_SCHEMA, "dead_letters": DEAD_LETTERS_SCHEMA, "rejects": REJECTS_SCHEMA}
    if layout.remote is None:
        recorded = recorded_files(layout.workdir, {name: layout.table_root(name) for name in schemas})
        for name, schema in schemas.items():
            files = [file for file in recorded if file.table == name]
            sources.relations[name] = _local_dataset(name, files, schema, sources)
    else:
        if s3 is None:
            raise ValueError(
                f"tables on s3://{layout.remote.location.bucket} need an S3 filesystem for DuckDB"
            )
        for name, schema in schemas.items():
            sources.relations[name] = _s3_parquet_relation(s3, layout, name, schema)
    for name, path, schema in (
        ("jobs", layout.jobs_snapshot_path, JOBS_SCHEMA),
        ("spend", layout.spend_snapshot_path, SPEND_SCHEMA),
    ):
        sources.relations[name] = _empty_relation(schema)
        if path.exists():
            sources.datasets[f"{name}_snapshot"] = snapshot = pq.read_table(path)
            sources.relations[name] = f"SELECT * FROM {name}_snapshot"
            if name == "jobs":
                sources.jobs_columns = set(snapshot.column_names)
    return sources


def create_views(
    connection: duckdb.DuckDBPyConnection, layout: StorageLayout, s3: AbstractFileSystem | None = None
) -> ViewSources:
    """Define the views on ``connection`` (see `view_sources`); returns what they read, with the
    unreadable files left out."""
    if s3 is not None:
        connection.register_filesystem(s3)
    sources = view_sources(layout, s3)
    sources.register(connection)
    sources.define(connection)
    return sources


def readable_s3_prefixes(layout: StorageLayout) -> list[str]:
    """``bucket/prefix/<table>`` of each table the views read on S3 (none while the tables are local)."""
    if layout.remote is None:
        return []
    location = layout.remote.location
    return [f"{location.bucket}/{location.key(table)}" for table in _VIEW_TABLES]


@contextmanager
def read_only_catalog(
    layout: StorageLayout, s3: AbstractFileSystem | None = None, sources: ViewSources | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckDB connection with the views defined: no statement a query runs can create, change
    or delete a file or a view, nor read a file. The views live in a catalog database opened read-only;
    the local tables and the jobs snapshot are Arrow datasets registered on the connection (DuckDB scans
    them without file access of its own); external access is then off with no allowed directory,
    spilling to disk is off, and the settings are locked. Unreadable recorded files are added to
    ``sources`` when given.

    With the tables on S3, ``s3`` is the filesystem to read them through; the query sees it only confined
    to the tables' prefixes and read-only (ConfinedReadOnlyS3), the one place external access allows."""
    confined = ConfinedReadOnlyS3(s3, readable_s3_prefixes(layout)) if s3 is not None else None
    found = view_sources(layout, confined)
    if sources is not None:
        sources.unreadable.extend(found.unreadable)
    with tempfile.TemporaryDirectory(prefix="batch_pipelines_catalog_") as folder:
        catalog = Path(folder) / "catalog.duckdb"
        with duckdb.connect(str(catalog)) as writer:
            if confined is not None:
                writer.register_filesystem(confined)
            found.register(writer)
            found.define(writer)
        connection = duckdb.connect(str(catalog), read_only=True)
        try:
            found.register(connection)
            connection.execute("SET temp_directory = ''")
            if confined is not None:
                connection.register_filesystem(confined)
                allowed = [f"s3://{prefix}/" for prefix in confined.prefixes]
                connection.execute(f"SET allowed_directories = [{', '.join(map(_quote, allowed))}]")
            connection.execute("SET enable_external_access = false")
            connection.execute("SET lock_configuration = true")
            yield connection
        finally:
            connection.close()
