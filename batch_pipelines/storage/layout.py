"""Where each table lives under the working folder.

<workdir>/inputs/<pipeline>/<partition>.parquet        normalised input rows
<workdir>/rejects/<pipeline>/<partition>.parquet       input rows that could not be used, with the reason
<results root>/<pipeline>/<partition>.parquet          one row per answered item (root: <workdir>/results)
<workdir>/dead_letters/<pipeline>/<partition>.parquet  items that failed for good, with the provider's error
<workdir>/batches.db                                   the engine's BatchStore
<workdir>/catalog/jobs.parquet                         snapshot of the store for the `jobs`/`costs` views
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batch_pipelines.pipeline.partition_keys import check_partition_key

TABLES = ("inputs", "rejects", "results", "dead_letters")


@dataclass(frozen=True)
class StorageLayout:
    workdir: Path
    results_root: Path

    @classmethod
    def for_workdir(cls, workdir: Path, results_root: str | Path | None = None) -> StorageLayout:
        root = Path(results_root) if results_root else Path("results")
        if not root.is_absolute():
            root = workdir / root
        return cls(workdir=workdir, results_root=root)

    @property
    def store_path(self) -> Path:
        return self.workdir / "batches.db"

    @property
    def jobs_snapshot_path(self) -> Path:
        return self.workdir / "catalog" / "jobs.parquet"

    def table_root(self, table: str) -> Path:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
        return self.results_root if table == "results" else self.workdir / table

    def partition_path(self, table: str, pipeline: str, partition_key: str) -> Path:
        """The file for one partition; the key is checked so it cannot leave the pipeline's folder."""
        check_partition_key(partition_key)
        check_partition_key(pipeline)
        folder = self.table_root(table) / pipeline
        path = folder / f"{partition_key}.parquet"
        if path.resolve().parent != folder.resolve():
            raise ValueError(f"partition key {partition_key!r} escapes {folder}")
        return path
