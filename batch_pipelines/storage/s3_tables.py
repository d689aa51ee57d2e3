"""The Parquet tables on S3: one object per partition, `<prefix>/<table>/<pipeline>/<partition>.parquet`.

A PUT replaces an object whole, so readers never see half a partition (the local layout gets the same
from temp file + rename). Works with any S3 client (boto3's, as dagster-aws's S3Resource hands out) and
any S3-compatible server; DuckDB reads the same objects through `duckdb_filesystem` below.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import polars as pl
from fsspec.implementations.arrow import ArrowFSWrapper
from pyarrow import fs as arrow_fs


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"storage URL {url!r}: expected s3://bucket[/prefix]")
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


@dataclass(frozen=True)
class S3Tables:
    """Partition files of the tables in one bucket/prefix, through an S3 client."""

    client: Any  # a boto3 S3 client
    location: S3Location

    def partition_key(self, table: str, pipeline: str, partition_key: str) -> str:
        return self.location.key(table, pipeline, f"{partition_key}.parquet")

    def partition_uri(self, table: str, pipeline: str, partition_key: str) -> str:
        return f"s3://{self.location.bucket}/{self.partition_key(table, pipeline, partition_key)}"

    def write(self, frame: pl.DataFrame, table: str, pipeline: str, partition_key: str) -> str:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=self.partition_key(table, pipeline, partition_key),
            Body=buffer.getvalue(),
        )
        return self.partition_uri(table, pipeline, partition_key)

    def read(
        self, table: str, pipeline: str, partition_key: str, columns: list[str] | None = None
    ) -> pl.DataFrame | None:
        """The partition's rows, or None when it was never written."""
        try:
            answer = self.client.get_object(
                Bucket=self.location.bucket, Key=self.partition_key(table, pipeline, partition_key)
            )
        except self.client.exceptions.NoSuchKey:
            return None
        return pl.read_parquet(io.BytesIO(answer["Body"].read()), columns=columns)

    def exists(self, table: str, pipeline: str, partition_key: str) -> bool:
        listed = self.client.list_objects_v2(
            Bucket=self.location.bucket, Prefix=self.partition_key(table, pipeline, partition_key), MaxKeys=1
        )
        return bool(listed.get("KeyCount"))

    def partition_keys(self, table: str, pipeline: str) -> list[str]:
        folder = self.location.key(table, pipeline) + "/"
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=folder
        ):
            for item in page.get("Contents", []):
                name = item["Key"][len(folder) :]
                if "/" not in name and name.endswith(".parquet"):
                    keys.append(name[: -len(".parquet")])
        return sorted(keys)

    def upload_file(self, path: str, *parts: str) -> str:
        """Store a local file (a batch input or output file) under the prefix; returns its s3:// URI."""
        self.client.upload_file(path, self.location.bucket, self.location.key(*parts))
        return self.location.uri(*parts)


def duckdb_filesystem(
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
) -> ArrowFSWrapper:
    """An ``s3`` filesystem for ``DuckDBPyConnection.register_filesystem``: DuckDB then reads
    ``read_parquet('s3://…/*.parquet')`` through Arrow's S3 client. Credentials left None come from the
    usual AWS environment (variables, profile, instance role)."""
    options: dict[str, Any] = {"region": region} if region else {}
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    if access_key and secret_key:
        options.update(access_key=access_key, secret_key=secret_key, session_token=session_token)
    return ArrowFSWrapper(arrow_fs.S3FileSystem(**options))
