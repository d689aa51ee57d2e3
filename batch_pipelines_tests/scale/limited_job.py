"""A Dagster job whose one step draws on the shared rate limiter, for test_redis_limiter_runs.py.

Module-level so Dagster can reconstruct it in the step processes of each run (and without postponed
annotations: Dagster reads the op's context annotation at definition time).
"""

import json
import os
from pathlib import Path

import dagster as dg

from batch_pipelines.components.rate_limiter_resource import RateLimiterResource


@dg.op(config_schema={"key": str, "admissions": int, "output": str})
def admit(context: dg.OpExecutionContext, rate_limiter: RateLimiterResource) -> None:
    limiter = rate_limiter.limiter(context.op_config["key"])
    admitted = [limiter.acquire_sync(10).admitted_at for _ in range(context.op_config["admissions"])]
    record = {"pid": os.getpid(), "run_id": context.run_id, "admitted_at": admitted}
    Path(context.op_config["output"]).write_text(json.dumps(record))


@dg.job(resource_defs={"rate_limiter": RateLimiterResource.configure_at_launch()})
def limited_job() -> None:
    admit()
