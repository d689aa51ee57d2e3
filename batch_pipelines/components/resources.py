"""Dagster resources: the batch engine's settings, and DuckDB over the results tree."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.views import create_views
from batch_pipelines.workdir import resolve_workdir


class BatchEngineResource(dg.ConfigurableResource):
    """How the pipelines reach the batch engine: credentials, endpoint and the working folder.

    The engine's store lives at `<workdir>/batches.db` (or at `store_url`, e.g. PostgreSQL), so every run,
    sensor tick and schedule of the code location sees the same jobs.
    """

    api_key: str | None = Field(default=None, description="Provider API key; set it with dg.EnvVar.")
    base_url: str | None = Field(
        default=None, description="Provider endpoint; None means the provider's own."
    )
    workdir: str | None = Field(default=None, description="Working folder; default $BATCH_PIPELINES_HOME.")
    sensor_page_size: int = Field(default=50, ge=1, description="Open jobs a sensor tick refreshes at most.")
    store_url: str | None = Field(
        default=None,
        description="Where the BatchStore lives: sqlite:///… or postgresql://user@host/db (several machines "
        "share one ledger); None means <workdir>/batches.db.",
    )
    enqueued_token_limit: int | None = Field(
        default=None,
        ge=1,
        description="The account's enqueued-token pool for the model (it grows with the usage tier); "
        "None keeps the provider client's default.",
    )

    def working_folder(self) -> Path:
        return resolve_workdir(self.workdir)

    def store_location(self) -> str | Path:
        return self.store_url or self.layout().store_path

    def layout(self, spec: PipelineSpec | None = None) -> StorageLayout:
        return StorageLayout.for_workdir(self.working_folder(), spec.results_root if spec else None)


class DuckDBResource(dg.ConfigurableResource):
    """A DuckDB connection with the `results`, `dead_letters`, `rejects`, `jobs` and `costs` views."""

    workdir: str | None = Field(default=None, description="Working folder; default $BATCH_PIPELINES_HOME.")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        layout = StorageLayout.for_workdir(resolve_workdir(self.workdir))
        with duckdb.connect() as connection:
            create_views(connection, layout)
            yield connection
