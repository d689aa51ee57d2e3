"""The columns a declaration names, checked against the source's header when it can be read cheaply (a
Parquet footer, a CSV header line, the first JSONL object), so `dg check defs` and every code-location
load report a prompt naming a column the source lacks instead of the first run failing on it.

Nothing is reported while the source cannot be seen from here (a SQL source, no file yet, an unreadable
header): the input asset checks the columns again when it reads the rows.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch_pipelines.pipeline.source import SourceError, source_files
from batch_pipelines.pipeline.spec import PipelineSpec


def header_columns(file: Path, file_format: str | None) -> list[str] | None:
    """The file's column names from its header alone, or None when the header cannot be read."""
    try:
        if file_format == "csv":
            with file.open(encoding="utf-8", errors="replace", newline="") as handle:
                return next(csv.reader(handle), [])
        if file_format == "jsonl":
            with file.open(encoding="utf-8", errors="replace") as handle:
                first = json.loads(handle.readline() or "{}")
            return list(first) if isinstance(first, dict) else None
        return list(pq.read_schema(file).names)
    except (OSError, ValueError, pa.ArrowException):
        return None


def missing_columns_problem(spec: PipelineSpec, base_dir: Path) -> str | None:
    """A line per declared field naming a column no source file has (and the columns they do have), or
    None when every column is there or the source's columns cannot be read cheaply."""
    if spec.source.sql is not None:
        return None
    try:
        files = source_files(spec, base_dir)
    except SourceError:
        return None
    present: dict[str, None] = {}
    for file in files:
        columns = header_columns(file, spec.source.file_format)
        if columns is None:
            return None
        present.update(dict.fromkeys(columns))
    uses = {
        "id_column": [spec.id_column],
        "partitions": [spec.partitions.column],
        "prompt": list(spec.prompt.columns),
    }
    lines = [
        f"  field '{field}': the source has no column {', '.join(repr(name) for name in missing)}"
        for field, names in uses.items()
        if (missing := [name for name in names if name not in present])
    ]
    if not lines:
        return None
    shown = ", ".join(str(file) for file in files[:3]) + (
        f" and {len(files) - 3} more" if len(files) > 3 else ""
    )
    return "\n".join([*lines, f"  (the source {shown} has: {', '.join(present)})"])
