"""The model requests one input partition stands for, each with the hash of what shapes it.

A partition may hold millions of rows, so requests are produced one at a time (`iter_planned`) and the
keys (id, request hash) a slice at a time (`key_slices`): streamed to a Parquet file for submission and
collection (`write_request_keys`, `iter_key_pairs`), or gathered as two columns for small partitions
(`request_keys`), never as a million Python objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.pipeline.requests import Message, PromptRenderer, RowHasher, request_hash, spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout

_REQUEST_FIELDS = ("max_tokens", "temperature")
SLICE_ROWS = 50_000
KEY_SEPARATOR = "\x1f"
KEY_COLUMNS: dict[str, pl.DataType] = {"id": pl.String(), "request_hash": pl.String()}
KEYS_ARROW_SCHEMA = pa.schema([("id", pa.string()), ("request_hash", pa.string())])


@dataclass(frozen=True)
class ParquetRows:
    """A Parquet file's rows, read a slice at a time (pyarrow's batch reader: only one slice in memory,
    however large the file); `ids` keeps only the rows whose id column value is in it."""

    path: Path
    ids: pl.Series | None = None

    def slices(self, columns: list[str], id_column: str, rows: int) -> Iterator[pl.DataFrame]:
        wanted = self.ids.implode() if self.ids is not None else None
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=rows, columns=columns):
            part = pl.DataFrame(pl.from_arrow(batch))
            yield part if wanted is None else part.filter(pl.col(id_column).cast(pl.String).is_in(wanted))


Rows = pl.DataFrame | ParquetRows


@dataclass(frozen=True)
class PlannedRequest:
    request: BatchRequest
    request_hash: str


def _slices(spec: PipelineSpec, inputs: Rows) -> Iterator[pl.DataFrame]:
    """The columns a request reads, a slice at a time (a file is read a slice at a time too, so a
    partition larger than memory can be planned)."""
    needed = list(dict.fromkeys([spec.id_column, *spec.prompt.columns]))
    if isinstance(inputs, ParquetRows):
        return inputs.slices(needed, spec.id_column, SLICE_ROWS)
    return inputs.select(needed).iter_slices(SLICE_ROWS)


def _strings(column: pl.Series, null: str) -> list[str]:
    """``str()`` of each value, `null` for a null."""
    if column.dtype == pl.String:
        return column.fill_null(null).to_list()
    return [null if value is None else str(value) for value in column.to_list()]


def iter_planned(spec: PipelineSpec, inputs: Rows) -> Iterator[PlannedRequest]:
    version = spec_version(spec)
    for request, messages in _iter_requests(spec, inputs):
        yield PlannedRequest(request=request, request_hash=request_hash(version, messages))


def iter_requests(spec: PipelineSpec, inputs: Rows) -> Iterator[BatchRequest]:
    """The requests alone, for callers that have the hashes already (`request_keys`)."""
    for request, _messages in _iter_requests(spec, inputs):
        yield request


def _iter_requests(spec: PipelineSpec, inputs: Rows) -> Iterator[tuple[BatchRequest, list[Message]]]:
    passthrough = {key: value for key, value in spec.params.items() if key not in _REQUEST_FIELDS}
    max_tokens, temperature = spec.params.get("max_tokens"), spec.params.get("temperature")
    renderer = PromptRenderer(spec)
    for ids, rows in _prompt_values(spec, renderer.columns, inputs):
        for request_id, values in zip(ids, rows, strict=True):
            system, user = renderer.render(values)
            messages: list[Message] = [{"role": "user", "content": user}]
            if system is not None:
                messages.insert(0, {"role": "system", "content": system})
            if spec.kind == "embedding":
                yield BatchRequest(id=request_id, input=user), messages
                continue
            request = BatchRequest(
                id=request_id,
                messages=[{"role": "user", "content": user}],
                system=system,
                max_tokens=max_tokens,
                temperature=temperature,
                params=dict(passthrough),
            )
            yield request, messages


def _prompt_values(
    spec: PipelineSpec, columns: tuple[str, ...], inputs: Rows
) -> Iterator[tuple[list[str], Iterable[tuple[str, ...]]]]:
    """Per slice of rows: the ids, and each row's prompt column values, taken from whole columns (this
    runs for every row of a partition). Values are ``str()`` of the cell, '' for a null, as
    `render_messages` reads them."""
    for part in _slices(spec, inputs):
        values = [_strings(part[column], "") for column in columns]
        rows = zip(*values, strict=True) if values else repeat((), part.height)
        yield _strings(part[spec.id_column], "None"), rows


def plan_requests(spec: PipelineSpec, inputs: Rows) -> list[PlannedRequest]:
    return list(iter_planned(spec, inputs))


def key_slices(spec: PipelineSpec, inputs: Rows) -> Iterator[pl.DataFrame]:
    """`id` and `request_hash` of every input row, in input order, a slice at a time."""
    hasher = RowHasher(spec)
    for ids, rows in _prompt_values(spec, hasher.renderer.columns, inputs):
        hashes = [hasher.hash(values) for values in rows]
        yield pl.DataFrame({"id": ids, "request_hash": hashes}, schema=KEY_COLUMNS)


def request_keys(spec: PipelineSpec, inputs: Rows) -> pl.DataFrame:
    """`id` and `request_hash` of every input row, in input order, in memory (see `write_request_keys`)."""
    return pl.concat([pl.DataFrame(schema=KEY_COLUMNS), *key_slices(spec, inputs)])


def write_request_keys(spec: PipelineSpec, inputs: Rows, path: Path) -> int:
    """`request_keys` streamed to a Parquet file a slice at a time (~64 B a row held otherwise); returns
    the row count."""
    rows = 0
    with pq.ParquetWriter(path, KEYS_ARROW_SCHEMA) as writer:
        for part in key_slices(spec, inputs):
            writer.write_table(part.to_arrow().cast(KEYS_ARROW_SCHEMA))
            rows += part.height
    return rows


def save_request_keys(
    layout: StorageLayout, spec: PipelineSpec, partition_key: str, keys_file: Path, job_id: str
) -> None:
    """Keep the keys a job was submitted with (`keys_file`, as `write_request_keys` wrote it), so collecting
    its results need not render every row again. Streamed, a row group at a time."""
    job = pl.lit(job_id, dtype=pl.Categorical()).alias("job_id")  # (stored once a row group, not once a row)
    with layout.partition_writer("request_keys", spec.name, partition_key) as saved:
        for batch in pq.ParquetFile(keys_file).iter_batches(batch_size=SLICE_ROWS):
            saved.write(pl.DataFrame(pl.from_arrow(batch)).with_columns(job))


def saved_request_keys_file(
    layout: StorageLayout, spec: PipelineSpec, partition_key: str, job_id: str, folder: Path
) -> Path | None:
    """A local Parquet file of the `id` and `request_hash` columns saved when `job_id` was submitted (the
    partition's own file, or a copy in `folder` when it is on S3); None when the partition's last
    submission was another job (or saved none)."""
    path = layout.local_partition_file("request_keys", spec.name, partition_key, folder)
    if path is None:
        return None
    saved = pq.ParquetFile(path)
    if saved.metadata.num_rows == 0:
        return None
    first = saved.read_row_group(0, columns=["job_id"]).column("job_id")[0].as_py()
    return path if first == job_id else None


def iter_key_pairs(keys_file: Path) -> Iterator[tuple[str, str]]:
    """(id, request hash) of each row of a keys file, in its order, a row group in memory at a time."""
    keys = pq.ParquetFile(keys_file)
    for batch in keys.iter_batches(batch_size=SLICE_ROWS, columns=["id", "request_hash"]):
        yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)


def joined_keys(keys: pl.DataFrame) -> pl.Series:
    """One string per (id, request hash) pair, for membership tests."""
    return keys.select(pl.concat_str("id", pl.lit(KEY_SEPARATOR), "request_hash").alias("key")).to_series()


def submission_job_id(spec: PipelineSpec, partition_key: str, sorted_keys: Iterable[pa.RecordBatch]) -> str:
    """Stable for the same set of requests, so re-running a submission never submits twice: a hash over
    the (`id`, `request_hash`) pairs in the order of their ids (`sorted_keys`, record batches of those two
    columns)."""
    digest = hashlib.sha256()
    for batch in sorted_keys:
        lines = pl.DataFrame(pl.from_arrow(batch)).select(
            pl.concat_str("id", pl.lit("\x1f"), "request_hash", pl.lit("\x1e")).str.join("")
        )
        digest.update(lines.item().encode())
    return f"{spec.name}.{partition_key}.{digest.hexdigest()[:12]}"
