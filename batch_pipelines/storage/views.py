"""DuckDB views over the Parquet tree and the store snapshots: `results`, `dead_letters`, `rejects`,
`jobs`, `spend` (the realtime path's paid calls) and `costs` (batch jobs and realtime spend, by path).

A view over a glob that matches no file yet is an empty relation with the table's columns, so queries
work on a fresh working folder too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
from fsspec import AbstractFileSystem

from batch_pipelines.storage.confined_s3 import ConfinedReadOnlyS3
from batch_pipelines.storage.layout import StorageLayout
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


def _parquet_relation(folder: Path, schema: dict[str, pl.DataType]) -> str:
    if not any(folder.glob("*/*.parquet")):
        return _empty_relation(schema)
    pattern = _quote(str(folder / "*" / "*.parquet"))
    return f"SELECT * FROM read_parquet({pattern}, union_by_name = true)"


def _s3_parquet_relation(
    s3: AbstractFileSystem, layout: StorageLayout, table: str, schema: dict[str, pl.DataType]
) -> str:
    assert layout.remote is not None
    folder = layout.remote.location.key(table)
    if not s3.glob(f"{layout.remote.location.bucket}/{folder}/*/*.parquet"):
        return _empty_relation(schema)
    pattern = _quote(layout.remote.location.uri(table, "*", "*.parquet"))
    return f"SELECT * FROM read_parquet({pattern}, union_by_name = true)"


def create_views(
    connection: duckdb.DuckDBPyConnection, layout: StorageLayout, s3: AbstractFileSystem | None = None
) -> None:
    """Define the views on ``connection``. When the layout keeps its tables on S3, ``s3`` is the
    filesystem DuckDB reads them through (see storage.s3_tables.duckdb_filesystem)."""
    schemas = {"results": RESULTS_SCHEMA, "dead_letters": DEAD_LETTERS_SCHEMA, "rejects": REJECTS_SCHEMA}
    if layout.remote is None:
        tables = {
            name: _parquet_relation(layout.table_root(name), schema) for name, schema in schemas.items()
        }
    else:
        if s3 is None:
            raise ValueError(
                f"tables on s3://{layout.remote.location.bucket} need an S3 filesystem for DuckDB"
            )
        connection.register_filesystem(s3)
        tables = {name: _s3_parquet_relation(s3, layout, name, schema) for name, schema in schemas.items()}
    relations = {
        **tables,
        "jobs": _snapshot_relation(layout.jobs_snapshot_path, JOBS_SCHEMA),
        "spend": _snapshot_relation(layout.spend_snapshot_path, SPEND_SCHEMA),
    }
    for name, relation in relations.items():
        connection.execute(f"CREATE OR REPLACE VIEW {name} AS {relation}")
    snapshot = layout.jobs_snapshot_path
    columns = set(pl.read_parquet_schema(snapshot)) if snapshot.exists() else set(JOBS_SCHEMA)
    connection.execute(
        _COSTS.format(
            jobs_path="path" if "path" in columns else "'batch'",
            jobs_forecast=_FORECAST if "expected_usd" in columns else _NO_FORECAST,
            no_forecast=_NO_FORECAST,
        )
    )


def _snapshot_relation(path: Path, schema: dict[str, pl.DataType]) -> str:
    return f"SELECT * FROM read_parquet({_quote(str(path))})" if path.exists() else _empty_relation(schema)


def readable_folders(layout: StorageLayout) -> list[Path]:
    """The local folders the views read: the only ones a read-only catalog lets a query open."""
    if layout.remote is not None:
        return [layout.jobs_snapshot_path.parent]
    folders = [layout.table_root(table) for table in _VIEW_TABLES]
    return [*folders, layout.jobs_snapshot_path.parent]


def readable_s3_prefixes(layout: StorageLayout) -> list[str]:
    """``bucket/prefix/<table>`` of each table the views read on S3 (none while the tables are local)."""
    if layout.remote is None:
        return []
    location = layout.remote.location
    return [f"{location.bucket}/{location.key(table)}" for table in _VIEW_TABLES]


@contextmanager
def read_only_catalog(
    layout: StorageLayout, s3: AbstractFileSystem | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckDB connection with the views defined: nothing a query runs can write, and no file
    outside the results tree can be read (external access off, the view folders allowed, settings locked).

    With the tables on S3, ``s3`` is the filesystem to read them through; the query sees it only confined
    to the tables' prefixes and read-only (ConfinedReadOnlyS3)."""
    confined = ConfinedReadOnlyS3(s3, readable_s3_prefixes(layout)) if s3 is not None else None
    with tempfile.TemporaryDirectory(prefix="batch_pipelines_catalog_") as folder:
        catalog = Path(folder) / "catalog.duckdb"
        with duckdb.connect(str(catalog)) as writer:
            create_views(writer, layout, confined)
        connection = duckdb.connect(str(catalog), read_only=True)
        try:
            allowed = [f"{path.resolve()}/" for path in readable_folders(layout)]
            if confined is not None:
                connection.register_filesystem(confined)
                allowed += [f"s3://{prefix}/" for prefix in confined.prefixes]
            connection.execute(f"SET allowed_directories = [{', '.join(map(_quote, allowed))}]")
            connection.execute("SET enable_external_access = false")
            connection.execute("SET lock_configuration = true")
            yield connection
        finally:
            connection.close()
