"""Retry policy and run tags shared by a pipeline's assets, so one bad partition never blocks another."""

from __future__ import annotations

import dagster as dg

STEP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
PARTITION_TAG = "batch_pipelines/partition"
JOB_ID_TAG = "batch_pipelines/job_id"
JOB_ATTEMPT_TAG = "batch_pipelines/job_attempt"  # the attempt a results run was requested to collect


def partition_tags(pipeline: str, partition_key: str) -> dict[str, str]:
    """The run-queue limit in dagster.yaml allows one run at a time per pipeline partition."""
    return {PARTITION_TAG: f"{pipeline}.{partition_key}"}


def failure_for_good(error: Exception | str) -> dg.Failure:
    """A step failure Dagster must not retry: bad input, a refused budget or key, a job not ready yet."""
    return dg.Failure(description=str(error), allow_retries=False)
