"""Resources shared by every pipeline of the code location.

The provider key comes from $BATCH_PIPELINES_API_KEY (read when a run starts, never stored); the
endpoint from $BATCH_PIPELINES_BASE_URL when set (the demo points it at the local emulator); the
BatchStore from $BATCH_PIPELINES_STORE_URL when set (e.g. postgresql://… for several machines); the
tables from $BATCH_PIPELINES_STORAGE_URL when set (s3://bucket/prefix, through boto3's usual AWS
configuration: role, AWS_REGION, AWS_ENDPOINT_URL_S3 …).
"""

from __future__ import annotations

import os

import dagster as dg

from batch_pipelines.components.resources import BatchEngineResource, DuckDBResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "batch_engine": BatchEngineResource(
                api_key=dg.EnvVar("BATCH_PIPELINES_API_KEY"),
                base_url=os.environ.get("BATCH_PIPELINES_BASE_URL") or None,
                store_url=os.environ.get("BATCH_PIPELINES_STORE_URL") or None,
                storage_url=os.environ.get("BATCH_PIPELINES_STORAGE_URL") or None,
            ),
            "duckdb": DuckDBResource(storage_url=os.environ.get("BATCH_PIPELINES_STORAGE_URL") or None),
        }
    )
