"""Whole-file Parquet writes that readers never see half done: write a temp file, then rename over."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl

from batch_pipelines.workdir import PRIVATE_FILE


def write_parquet_atomic(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> Path:
    """Replace `path` with `frame` in one step; a re-run replaces, never appends. A LazyFrame is
    streamed to the file, so it may be far larger than memory (and may read the file it replaces)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(temporary, engine="streaming")
        else:
            frame.write_parquet(temporary)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, PRIVATE_FILE)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_parquet_or_empty(path: Path, schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
    if path.exists():
        return pl.read_parquet(path)
    return pl.DataFrame(schema=schema)
