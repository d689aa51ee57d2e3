"""Dagster resources: the batch engine's settings, and DuckDB over the results tree."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_aws.s3 import S3Resource
from fsspec import AbstractFileSystem
from pydantic import Field, field_validator

from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.locations import s3_endpoint_from_environment
from batch_pipelines.storage.s3_batch_files import S3BatchFiles
from batch_pipelines.storage.s3_tables import S3Location, S3Tables, duckdb_filesystem
from batch_pipelines.storage.views import create_views
from batch_pipelines.workdir import resolve_workdir


class PlainKeyError(TypeError):
    """A key handed over in clear. (Not a ValueError: pydantic would wrap it in an error that shows the
    value.)"""


PLAIN_KEY_REFUSED = (
    "BatchEngineResource.api_key: a key given as a plain string is stored by Dagster in its run history; "
    "pass dg.EnvVar('NAME') naming the environment variable that holds it"
)
# True while Dagster builds a run's copy of a resource, whose config holds the EnvVar's value.
_RESOLVING_CONFIG: ContextVar[bool] = ContextVar("batch_engine_resolving_config", default=False)


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
    storage_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix puts inputs, rejects, results and dead letters on S3 (through `s3`), "
        "and a copy of each provider batch's input and output file; None keeps the tables under the "
        "working folder.",
    )
    s3: S3Resource | None = Field(
        default=None, description="The dagster-aws S3Resource for storage_url; None: AWS defaults."
    )
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

    @field_validator("api_key", mode="before")
    @classmethod
    def _key_only_from_the_environment(cls, value: object) -> object:
        if isinstance(value, str) and not isinstance(value, dg.EnvVar) and not _RESOLVING_CONFIG.get():
            raise PlainKeyError(PLAIN_KEY_REFUSED)
        return value

    def _with_updated_values(self, values: Mapping[str, Any] | None) -> Any:
        """Dagster's copy of the resource for a run or tick, the EnvVar resolved: not a plain key."""
        token = _RESOLVING_CONFIG.set(True)
        try:
            return super()._with_updated_values(values)
        finally:
            _RESOLVING_CONFIG.reset(token)

    def provider_key(self) -> str | None:
        """The key: the value Dagster resolved for a run, or read from its variable outside one."""
        key = self.api_key
        return key.get_value() if isinstance(key, dg.EnvVar) else key

    def working_folder(self) -> Path:
        return resolve_workdir(self.workdir)

    def store_location(self) -> str | Path:
        return self.store_url or self.layout().store_path

    def batch_files(self) -> S3BatchFiles | None:
        """Where provider batches' input/output files are kept: beside the tables when they are on S3."""
        remote = remote_tables(self.storage_url, self.s3)
        return S3BatchFiles(client=remote.client, location=remote.location) if remote else None

    def layout(self, spec: PipelineSpec | None = None) -> StorageLayout:
        return StorageLayout.for_workdir(
            self.working_folder(),
            spec.results_root if spec else None,
            remote=remote_tables(self.storage_url, self.s3),
        )


def key_from_environment(name: str, value: str) -> dg.EnvVar:
    """Put a key this process holds (the demo's, a test's) into its environment under `name`, and refer to
    it the only way BatchEngineResource takes one. Child processes inherit it; Dagster never stores it."""
    os.environ[name] = value
    return dg.EnvVar(name)


class DuckDBResource(dg.ConfigurableResource):
    """A DuckDB connection with the `results`, `dead_letters`, `rejects`, `jobs` and `costs` views."""

    workdir: str | None = Field(default=None, description="Working folder; default $BATCH_PIPELINES_HOME.")
    storage_url: str | None = Field(default=None, description="s3://bucket/prefix when the tables are on S3.")
    s3: S3Resource | None = Field(default=None, description="The S3Resource for storage_url.")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        remote = remote_tables(self.storage_url, self.s3)
        layout = StorageLayout.for_workdir(resolve_workdir(self.workdir), remote=remote)
        with duckdb.connect() as connection:
            create_views(
                connection, layout, duckdb_s3_filesystem(self.s3 or S3Resource()) if remote else None
            )
            yield connection


def remote_tables(storage_url: str | None, s3: S3Resource | None) -> S3Tables | None:
    """The S3 tables of a resource's storage_url (None when the tables stay local)."""
    if not storage_url:
        return None
    return S3Tables(client=(s3 or S3Resource()).get_client(), location=S3Location.parse(storage_url))


def duckdb_s3_filesystem(s3: S3Resource) -> AbstractFileSystem:
    """The S3Resource's endpoint, region and credentials (when set) as a filesystem DuckDB reads through.
    Without an endpoint on the resource, the one boto3 would use from the environment: Arrow's S3 client
    does not read $AWS_ENDPOINT_URL_S3 itself, so DuckDB would otherwise query AWS while the tables were
    written to the local server."""
    return duckdb_filesystem(
        endpoint_url=s3.endpoint_url or s3_endpoint_from_environment(),
        region=s3.region_name,
        access_key=s3.aws_access_key_id,
        secret_key=s3.aws_secret_access_key,
        session_token=s3.aws_session_token,
    )
