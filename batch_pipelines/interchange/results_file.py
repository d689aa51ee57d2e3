"""Importing an OpenAI batch output file (what `vllm run-batch -o` writes) into a partition's results,
exactly once: an item already answered for the same request is left as it is, so importing a file twice
adds nothing. Failed lines become dead letters (transient ones are sent again by the next submission).

The whole file is read and checked before anything is written; a bad line is reported by number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from batch_pipelines.components.collection import dead_row, result_row, results_frame_schema
from batch_pipelines.components.requests_for_partition import request_keys
from batch_pipelines.engine.models import BatchResult
from batch_pipelines.engine.results import ResultFinisher
from batch_pipelines.interchange.requests_file import partition_inputs
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.providers.openai import parse_output_line
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import read_parquet_or_empty
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA


class ImportFileError(ValueError):
    """A results file that cannot be imported; the message names the file and line."""


@dataclass(frozen=True)
class ImportOutcome:
    answered: int  # new results rows
    dead_letters: int  # new or replaced dead letters
    already_answered: int  # lines for items answered before (left as they were)
    job_id: str


def import_results(
    spec: PipelineSpec, layout: StorageLayout, partition_key: str, path: Path
) -> ImportOutcome:
    content = path.read_bytes()
    job_id = f"{spec.name}.{partition_key}.import-{hashlib.sha256(content).hexdigest()[:12]}"
    keys = request_keys(spec, partition_inputs(spec, layout, partition_key))
    hashes = dict(keys.iter_rows())
    parsed = _read_lines(path, content, hashes)

    schema = results_frame_schema(spec)
    results_path = layout.partition_path("results", spec.name, partition_key)
    dead_path = layout.partition_path("dead_letters", spec.name, partition_key)
    earlier = read_parquet_or_empty(results_path, schema)
    answered_before = {
        rid for rid, rhash in earlier.select("id", "request_hash").iter_rows() if hashes.get(rid) == rhash
    }

    finisher = ResultFinisher(
        price=None, response_schema=spec.response_schema, attempt=1, provider_batch_id=None
    )
    version = spec_version(spec)
    new_rows: list[dict[str, Any]] = []
    dead_rows: list[dict[str, Any]] = []
    for result in parsed:
        if result.id in answered_before:
            continue
        finisher.finish(result)
        if result.ok:
            new_rows.append(
                {
                    **result_row(spec, partition_key, job_id, result, version, "imported"),
                    "request_hash": hashes[result.id],
                }
            )
        else:
            dead_rows.append(
                {**dead_row(spec, partition_key, job_id, result), "request_hash": hashes[result.id]}
            )

    if new_rows or dead_rows:
        fresh = pl.DataFrame(new_rows, schema=schema)
        replaced = set(fresh["id"].to_list())
        merged = pl.concat(
            [earlier.filter(~pl.col("id").is_in(list(replaced))), fresh], how="diagonal_relaxed"
        )
        dead_now = pl.DataFrame(dead_rows, schema=DEAD_LETTERS_SCHEMA)
        settled_now = replaced | set(dead_now["id"].to_list())
        earlier_dead = read_parquet_or_empty(dead_path, DEAD_LETTERS_SCHEMA).filter(
            ~pl.col("id").is_in(list(settled_now))
        )
        layout.write_partition(merged.sort("id"), "results", spec.name, partition_key)
        layout.write_partition(
            pl.concat([earlier_dead, dead_now], how="diagonal_relaxed").sort("id"),
            "dead_letters",
            spec.name,
            partition_key,
        )
    return ImportOutcome(
        answered=len(new_rows),
        dead_letters=len(dead_rows),
        already_answered=len(parsed) - len(new_rows) - len(dead_rows),
        job_id=job_id,
    )


def _read_lines(path: Path, content: bytes, hashes: dict[str, str]) -> list[BatchResult]:
    results: list[BatchResult] = []
    seen: set[str] = set()
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            result = parse_output_line(line)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise ImportFileError(
                f"{path}, line {number}: not an OpenAI batch output line ({type(error).__name__}: {error})"
            ) from None
        if result.id not in hashes:
            raise ImportFileError(
                f"{path}, line {number}: custom_id {result.id!r} is not an item of this partition"
            )
        if result.id in seen:
            raise ImportFileError(f"{path}, line {number}: custom_id {result.id!r} appears twice in the file")
        seen.add(result.id)
        results.append(result)
    return results
