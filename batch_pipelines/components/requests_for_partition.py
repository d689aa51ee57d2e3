"""The model requests one input partition stands for, each with the hash of what shapes it.

A partition may hold millions of rows, so requests are produced one at a time (`iter_planned`) and the
hashes kept as two columns (`request_keys`), never as a million Python objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.pipeline.requests import Message, PromptRenderer, RowHasher, request_hash, spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout

_REQUEST_FIELDS = ("max_tokens", "temperature")
SLICE_ROWS = 50_000
KEY_SEPARATOR = "\x1f"
KEYS_SCHEMA: dict[str, pl.DataType] = {"id": pl.String(), "request_hash": pl.String(), "job_id": pl.String()}


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


def request_keys(spec: PipelineSpec, inputs: Rows) -> pl.DataFrame:
    """`id` and `request_hash` of every input row, in input order."""
    hasher = RowHasher(spec)
    schema = {"id": pl.String, "request_hash": pl.String}
    parts = [pl.DataFrame(schema=schema)]
    for ids, rows in _prompt_values(spec, hasher.renderer.columns, inputs):
        hashes = [hasher.hash(values) for values in rows]
        parts.append(pl.DataFrame({"id": ids, "request_hash": hashes}, schema=schema))
    return pl.concat(parts)


def save_request_keys(
    layout: StorageLayout, spec: PipelineSpec, partition_key: str, keys: pl.DataFrame, job_id: str
) -> None:
    """Keep the keys a job was submitted with, so collecting its results need not render every row again."""
    job = pl.lit(job_id, dtype=pl.Categorical()).alias("job_id")  # (stored once, not once a row)
    layout.write_partition(keys.with_columns(job), "request_keys", spec.name, partition_key)


def saved_request_keys(
    layout: StorageLayout, spec: PipelineSpec, partition_key: str, job_id: str
) -> pl.DataFrame | None:
    """The `id` and `request_hash` columns saved when `job_id` was submitted; None when the partition's
    last submission was another job (or saved none)."""
    saved = layout.read_partition("request_keys", spec.name, partition_key, schema=KEYS_SCHEMA)
    if saved.height == 0 or saved["job_id"][0] != job_id:
        return None
    return saved.select("id", "request_hash")


def joined_keys(keys: pl.DataFrame) -> pl.Series:
    """One string per (id, request hash) pair, for membership tests."""
    return keys.select(pl.concat_str("id", pl.lit(KEY_SEPARATOR), "request_hash").alias("key")).to_series()


def submission_job_id(spec: PipelineSpec, partition_key: str, keys: pl.DataFrame) -> str:
    """Stable for the same set of requests (`id`, `request_hash` columns), so re-running a submission
    never submits twice."""
    digest = hashlib.sha256()
    order = keys["id"].arg_sort()  # (positions, not a sorted copy of the keys)
    for start in range(0, len(order), SLICE_ROWS):
        part = keys.select("id", "request_hash")[order[start : start + SLICE_ROWS]]
        digest.update("".join(f"{rid}\x1f{rhash}\x1e" for rid, rhash in part.iter_rows()).encode())
    return f"{spec.name}.{partition_key}.{digest.hexdigest()[:12]}"
