"""Resources shared by every pipeline of the code location.

The provider key comes from $BATCH_PIPELINES_API_KEY (read when a run starts, never stored); the
endpoint from $BATCH_PIPELINES_BASE_URL when set (the demo points it at the local emulator); the
BatchStore from $BATCH_PIPELINES_STORE_URL when set (e.g. postgresql://… for several machines); the
tables from $BATCH_PIPELINES_STORAGE_URL when set (s3://bucket/prefix, through boto3's usual AWS
configuration: role, AWS_REGION, AWS_ENDPOINT_URL_S3 …). The shared rate limiter of `mode: realtime|auto`
pipelines: $BATCH_PIPELINES_RATE_LIMIT_URL (default: SQLite in the working folder) and the per-key limits
$BATCH_PIPELINES_REQUESTS_PER_MINUTE / $BATCH_PIPELINES_TOKENS_PER_MINUTE (defaults below; a pipeline's
`realtime.requests_per_minute` / `tokens_per_minute` take precedence).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.components.resources import BatchEngineResource, DuckDBResource

DEFAULT_REQUESTS_PER_MINUTE = 500
DEFAULT_TOKENS_PER_MINUTE = 200_000


def _limit(name: str, default: int) -> Any:
    """Resolved by Dagster when a run starts if the variable is set; the default otherwise."""
    return dg.EnvVar.int(name) if name in os.environ else default


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
            "rate_limiter": RateLimiterResource(
                url=os.environ.get("BATCH_PIPELINES_RATE_LIMIT_URL") or None,
                requests_per_minute=_limit(
                    "BATCH_PIPELINES_REQUESTS_PER_MINUTE", DEFAULT_REQUESTS_PER_MINUTE
                ),
                tokens_per_minute=_limit("BATCH_PIPELINES_TOKENS_PER_MINUTE", DEFAULT_TOKENS_PER_MINUTE),
            ),
            "duckdb": DuckDBResource(storage_url=os.environ.get("BATCH_PIPELINES_STORAGE_URL") or None),
        }
    )
