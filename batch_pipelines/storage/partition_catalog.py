"""The record of every partition file a run wrote: `<workdir>/catalog/partitions.db` (SQLite).

The DuckDB views read only the files recorded here, so a file that appears in the results tree by other
means (copied in, or written by an older `query`) is ignored, and `batch-pipelines doctor` names it. The
path is kept as written, so a spec's `results_root` outside the working folder is found too.

A working folder from before this record existed has files but no catalog: the first read records the
files laid out as a run writes them (`<table>/<pipeline>/<partition>.parquet`), once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from batch_pipelines.pipeline.partition_keys import check_partition_key

CATALOG_FILE = "partitions.db"
CATALOGUED_TABLES = ("results", "dead_letters", "rejects")


@dataclass(frozen=True)
class PartitionFile:
    table: str
    pipeline: str
    partition_key: str
    path: Path


def catalog_path(workdir: Path) -> Path:
    return workdir / "catalog" / CATALOG_FILE


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        with connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS partition_files (tbl TEXT NOT NULL, pipeline TEXT NOT NULL, "
                "partition_key TEXT NOT NULL, path TEXT NOT NULL, written_at REAL NOT NULL, "
                "PRIMARY KEY (tbl, pipeline, partition_key))"
            )
        yield connection


def record_partition_file(workdir: Path, table: str, pipeline: str, partition_key: str, path: Path) -> None:
    """Note that a run wrote `path` as the table's partition (the latest write wins)."""
    if table not in CATALOGUED_TABLES:
        return
    location = catalog_path(workdir)
    location.parent.mkdir(parents=True, exist_ok=True)
    with _connect(location) as connection, connection:
        connection.execute(
            "INSERT OR REPLACE INTO partition_files VALUES (?, ?, ?, ?, ?)",
            (table, pipeline, partition_key, str(path.resolve()), time.time()),
        )


def recorded_files(workdir: Path, table_roots: dict[str, Path]) -> list[PartitionFile]:
    """Every recorded partition file (of the tables in `table_roots`), adopting the files already laid
    out under those roots when the working folder has no catalog yet."""
    location = catalog_path(workdir)
    if not location.exists():
        laid_out = [file for table, root in table_roots.items() for file in laid_out_files(table, root)]
        if not laid_out:
            return []
        for file in laid_out:
            record_partition_file(workdir, file.table, file.pipeline, file.partition_key, file.path)
    with _connect(location) as connection:
        rows = connection.execute(
            "SELECT tbl, pipeline, partition_key, path FROM partition_files ORDER BY tbl, pipeline, "
            "partition_key"
        ).fetchall()
    return [PartitionFile(table, pipeline, key, Path(path)) for table, pipeline, key, path in rows]


def laid_out_files(table: str, root: Path) -> list[PartitionFile]:
    """The files under a table's root named as a run names them."""
    files = []
    for path in sorted(root.glob("*/*.parquet")):
        try:
            check_partition_key(path.parent.name)
            check_partition_key(path.stem)
        except ValueError:
            continue
        files.append(PartitionFile(table, path.parent.name, path.stem, path))
    return files
