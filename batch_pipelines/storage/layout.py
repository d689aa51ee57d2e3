"""Where each table lives under the working folder.

<workdir>/inputs/<pipeline>/<partition>.parquet        normalised input rows
<workdir>/rejects/<pipeline>/<partition>.parquet       input rows that could not be used, with the reason
<results root>/<pipeline>/<partition>.parquet          one row per answered item (root: <workdir>/results)
<workdir>/dead_letters/<pipeline>/<partition>.parquet  items that failed for good, with the provider's error
<workdir>/request_keys/<pipeline>/<partition>.parquet  id + request hash of each row as last submitted
<workdir>/batches.db                                   the engine's BatchStore
<workdir>/catalog/jobs.parquet                         snapshot of the store for the `jobs`/`costs` views
<workdir>/catalog/partitions.db                        every partition file a run wrote (what the views read)

With `remote` set (S3Tables), the inputs, rejects, results, dead letters and request keys live on S3
instead, at `s3://<bucket>/<prefix>/<table>/<pipeline>/<partition>.parquet`; use the *_partition
methods below to read and write them wherever they are.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from batch_pipelines.pipeline.partition_keys import check_partition_key
from batch_pipelines.storage.parquet_files import write_parquet_atomic
from batch_pipelines.storage.partition_catalog import record_partition_file
from batch_pipelines.storage.s3_tables import S3Tables
from batch_pipelines.workdir import PRIVATE_FILE, make_workdir

TABLES = ("inputs", "rejects", "results", "dead_letters", "request_keys")


@dataclass(frozen=True)
class StorageLayout:
    workdir: Path
    results_root: Path
    remote: S3Tables | None = None

    @classmethod
    def for_workdir(
        cls, workdir: Path, results_root: str | Path | None = None, remote: S3Tables | None = None
    ) -> StorageLayout:
        root = Path(results_root) if results_root else Path("results")
        if not root.is_absolute():
            root = workdir / root
        return cls(workdir=workdir, results_root=root, remote=remote)

    @property
    def store_path(self) -> Path:
        return self.workdir / "batches.db"

    @property
    def jobs_snapshot_path(self) -> Path:
        return self.workdir / "catalog" / "jobs.parquet"

    @property
    def spend_snapshot_path(self) -> Path:
        """The realtime spend ledger's totals, beside the jobs snapshot (storage/jobs_snapshot.py)."""
        return self.workdir / "catalog" / "spend.parquet"

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

    # -- partition files, local or on S3 -------------------------------------------------------------------

    def partition_location(self, table: str, pipeline: str, partition_key: str) -> str:
        """Where one partition's file is: a local path or an s3:// URI (for messages and metadata)."""
        if self.remote is None:
            return str(self.partition_path(table, pipeline, partition_key))
        self.partition_path(table, pipeline, partition_key)  # the same key checks
        return self.remote.partition_uri(table, pipeline, partition_key)

    def write_partition(
        self, frame: pl.DataFrame | pl.LazyFrame, table: str, pipeline: str, partition_key: str
    ) -> str:
        """Replace one partition's file whole; returns its location. A LazyFrame is streamed into a
        local file (on S3 it is collected first, as S3 objects are written whole)."""
        path = self.partition_path(table, pipeline, partition_key)
        if self.remote is None:
            make_workdir(self.workdir)
            write_parquet_atomic(frame, path)
            record_partition_file(self.workdir, table, pipeline, partition_key, path)
            return str(path)
        if isinstance(frame, pl.LazyFrame):
            frame = frame.collect(engine="streaming")
        return self.remote.write(frame, table, pipeline, partition_key)

    def scan_partition(
        self, table: str, pipeline: str, partition_key: str, *, schema: pl.Schema | dict[str, pl.DataType]
    ) -> pl.LazyFrame:
        """One partition's rows, read as they are used (local files); empty with ``schema`` if never
        written."""
        path = self.partition_path(table, pipeline, partition_key)
        if self.remote is None:
            return pl.scan_parquet(path) if path.exists() else pl.LazyFrame(schema=schema)
        return self.read_partition(table, pipeline, partition_key, schema=schema).lazy()

    @contextlib.contextmanager
    def partition_writer(self, table: str, pipeline: str, partition_key: str) -> Iterator[PartitionWriter]:
        """Write one partition's file a batch at a time; when the block ends without an error the file
        replaces the partition's whole, as `write_partition` does (a temp file renamed over it, or one
        upload on S3). Nothing is replaced when it ends with one."""
        path = self.partition_path(table, pipeline, partition_key)
        staging: contextlib.AbstractContextManager[str] = (
            tempfile.TemporaryDirectory(prefix=".partition-") if self.remote else contextlib.nullcontext("")
        )
        with staging as folder:
            temporary = (
                Path(folder) / path.name
                if self.remote
                else path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            )
            if self.remote is None:
                make_workdir(self.workdir)
            temporary.parent.mkdir(parents=True, exist_ok=True)
            writer = PartitionWriter(temporary)
            try:
                yield writer
                writer.close()
                if not temporary.exists():
                    raise ValueError(f"no rows were written for {table} partition {partition_key!r}")
                if self.remote is None:
                    os.chmod(temporary, PRIVATE_FILE)
                    os.replace(temporary, path)
                    record_partition_file(self.workdir, table, pipeline, partition_key, path)
                    writer.location = str(path)
                else:
                    writer.location = self.remote.upload_file(
                        str(temporary), table, pipeline, f"{partition_key}.parquet"
                    )
            finally:
                writer.close()
                temporary.unlink(missing_ok=True)

    def partition_exists(self, table: str, pipeline: str, partition_key: str) -> bool:
        path = self.partition_path(table, pipeline, partition_key)
        return path.exists() if self.remote is None else self.remote.exists(table, pipeline, partition_key)

    def local_partition_file(
        self, table: str, pipeline: str, partition_key: str, folder: Path
    ) -> Path | None:
        """One partition's file at a local path, for readers that take a path (DuckDB, pyarrow): the file
        itself, or on S3 a copy downloaded into `folder`; None when it was never written."""
        path = self.partition_path(table, pipeline, partition_key)
        if self.remote is None:
            return path if path.exists() else None
        if not self.remote.exists(table, pipeline, partition_key):
            return None
        copy = folder / f"{table}-{path.name}"
        self.remote.client.download_file(
            self.remote.location.bucket, self.remote.partition_key(table, pipeline, partition_key), str(copy)
        )
        return copy

    def partition_keys(self, table: str, pipeline: str) -> list[str]:
        """The keys of the partitions written to a table for one pipeline."""
        check_partition_key(pipeline)
        if self.remote is not None:
            return self.remote.partition_keys(table, pipeline)
        folder = self.table_root(table) / pipeline
        return sorted(path.name.removesuffix(".parquet") for path in folder.glob("*.parquet"))

    def read_partition(
        self,
        table: str,
        pipeline: str,
        partition_key: str,
        *,
        schema: pl.Schema | dict[str, pl.DataType] | None = None,
        columns: list[str] | None = None,
    ) -> pl.DataFrame:
        """One partition's rows; a partition never written is empty with ``schema``, or, without a
        schema, FileNotFoundError naming where it was looked for."""
        path = self.partition_path(table, pipeline, partition_key)
        if self.remote is None:
            frame = pl.read_parquet(path, columns=columns) if path.exists() else None
        else:
            frame = self.remote.read(table, pipeline, partition_key, columns=columns)
        if frame is not None:
            return frame
        if schema is None:
            raise FileNotFoundError(
                f"no {table} partition {partition_key!r} of {pipeline!r} at "
                f"{self.partition_location(table, pipeline, partition_key)}"
            )
        empty = pl.DataFrame(schema=schema)
        return empty.select(columns) if columns else empty


class PartitionWriter:
    """Batches appended to one Parquet file (each batch a row group, all with the first one's schema),
    flushed to disk on close; `rows` counts them and `location` is set once the partition is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.location = ""
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd", use_dictionary=False)
        self._writer.write_table(table)
        self.rows += frame.height

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is None:
            return
        self._writer.close()
        with self.path.open("rb") as written:
            os.fsync(written.fileno())
