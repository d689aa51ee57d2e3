"""Copy the engine's job records into Parquet so DuckDB can show them as the `jobs` and `costs` views."""

from __future__ import annotations

from batch_pipelines.storage.layout import StorageLayout


def refresh_jobs_snapshot(layout: StorageLayout) -> None:
    """Placeholder until the engine's BatchStore lands."""
