"""Where a command finds the data: the working folder, the BatchStore and the tables, local or shared.

The same settings the code location's resources read (batch_pipelines/defs/resources.py), so a command
on any machine sees what the deployment's runs wrote: `--store-url` or $BATCH_PIPELINES_STORE_URL (e.g.
postgresql://batch@db/batch_pipelines), `--storage-url` or $BATCH_PIPELINES_STORAGE_URL
(s3://bucket/prefix) and, for an S3-compatible server, `--s3-endpoint-url` or $AWS_ENDPOINT_URL_S3 /
$AWS_ENDPOINT_URL. Secrets come from the environment only: AWS credentials through boto3's and Arrow's
usual chain, the database password from PGPASSWORD; a password written into `--store-url` is refused,
so it never sits in shell history or a process list.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from fsspec import AbstractFileSystem

from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.s3_tables import S3Location, S3Tables, duckdb_filesystem
from batch_pipelines.workdir import resolve_workdir

STORE_URL_ENV = "BATCH_PIPELINES_STORE_URL"
STORAGE_URL_ENV = "BATCH_PIPELINES_STORAGE_URL"
S3_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def s3_endpoint_from_environment() -> str | None:
    """An S3-compatible server named the way boto3 reads it ($AWS_ENDPOINT_URL_S3, then $AWS_ENDPOINT_URL)."""
    return next((os.environ[name] for name in S3_ENDPOINT_ENVS if os.environ.get(name)), None)


def add_location_options(parser: argparse.ArgumentParser, *, tables: bool = True) -> None:
    """--workdir and --store-url, and with ``tables`` --storage-url and --s3-endpoint-url."""
    parser.add_argument("--workdir", default=None, help="working folder (default: $BATCH_PIPELINES_HOME)")
    parser.add_argument(
        "--store-url",
        default=None,
        help=f"the shared BatchStore, e.g. postgresql://user@host/db (default: ${STORE_URL_ENV}, else "
        "<workdir>/batches.db); the password comes from PGPASSWORD",
    )
    if tables:
        parser.add_argument(
            "--storage-url",
            default=None,
            help=f"s3://bucket/prefix holding the tables (default: ${STORAGE_URL_ENV}, else the workdir)",
        )
        parser.add_argument(
            "--s3-endpoint-url",
            default=None,
            help="an S3-compatible server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)",
        )


@dataclass(frozen=True)
class DataLocations:
    workdir: Path
    store_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DataLocations:
        """Flags first, then the environment; a flag's store URL must not carry a password."""
        flag_store = getattr(args, "store_url", None)
        if flag_store and _has_password(flag_store):
            raise ValueError("--store-url must not contain a password: set PGPASSWORD instead")
        return cls(
            workdir=resolve_workdir(args.workdir),
            store_url=flag_store or os.environ.get(STORE_URL_ENV) or None,
            storage_url=getattr(args, "storage_url", None) or os.environ.get(STORAGE_URL_ENV) or None,
            s3_endpoint_url=getattr(args, "s3_endpoint_url", None) or s3_endpoint_from_environment(),
        )

    @property
    def local_layout(self) -> StorageLayout:
        return StorageLayout.for_workdir(self.workdir)

    def store_location(self) -> str | Path:
        return self.store_url or self.local_layout.store_path

    def store_exists(self) -> bool:
        """A shared store always does (its tables are created on first use); a local one once written."""
        return self.store_url is not None or self.local_layout.store_path.exists()

    def describe_store(self) -> str:
        if self.store_url is None:
            return str(self.local_layout.store_path)
        from sqlalchemy import make_url

        return make_url(self.store_url).render_as_string(hide_password=True)

    @cached_property
    def layout(self) -> StorageLayout:
        """The tables' layout: on S3 (through a boto3 client) when a storage URL is set."""
        if not self.storage_url:
            return self.local_layout
        import boto3

        client = boto3.client("s3", endpoint_url=self.s3_endpoint_url)
        remote = S3Tables(client=client, location=S3Location.parse(self.storage_url))
        return StorageLayout.for_workdir(self.workdir, remote=remote)

    def duckdb_s3(self) -> AbstractFileSystem | None:
        """The filesystem DuckDB reads S3 tables through (None while the tables are local)."""
        if not self.storage_url:
            return None
        import boto3

        return duckdb_filesystem(
            endpoint_url=self.s3_endpoint_url, region=boto3.session.Session().region_name
        )


def _has_password(url: str) -> bool:
    from sqlalchemy import make_url

    return make_url(url).password is not None
