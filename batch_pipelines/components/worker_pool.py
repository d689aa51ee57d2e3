"""A pipeline's `workers:` section as Dagster definitions: the worker job and its queue-depth sensor.

The pool is named after the pipeline (job `<pipeline>_realtime_worker`, sensor
`<pipeline>_worker_scaling`, runs tagged `batch_pipelines/worker_pool=<pipeline>`). Its queue is found
when a run or tick starts, from the `batch_engine` resource:

- `backend: sqlite`: the embedded WorkQueue named `queue` in `<workdir>/queues/<pipeline>.workers.db`
  (one machine, or a working folder every worker shares);
- `backend: sqs`: the SQS queue `queue` (and `<queue>-dead`, created with the redrive policy when
  missing) through boto3's AWS configuration, with its results ledger in the BatchStore's database
  (`store_url`), else in that SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import dagster as dg

from batch_pipelines.components.realtime_worker import DrainableQueue, build_realtime_worker_job
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.worker_scaling import build_worker_scaling_sensor
from batch_pipelines.pipeline.spec import PipelineSpec, WorkersSpec


def _workers(spec: PipelineSpec) -> WorkersSpec:
    if spec.workers is None:
        raise ValueError(f"pipeline {spec.name!r} declares no workers")
    return spec.workers


def queue_file(spec: PipelineSpec, engine: BatchEngineResource) -> Path:
    return engine.working_folder() / "queues" / f"{spec.name}.workers.db"


def open_worker_queue(spec: PipelineSpec, engine: BatchEngineResource) -> DrainableQueue:
    """The queue the pool drains (not yet initialized)."""
    workers = _workers(spec)
    file = queue_file(spec, engine)
    file.parent.mkdir(parents=True, exist_ok=True)
    if workers.backend == "sqs":
        import boto3

        from batch_pipelines.realtime.sqs_queue import SqsWorkQueue

        return SqsWorkQueue.create(
            boto3.client("sqs"),
            workers.queue,
            ledger_url=engine.store_url or f"sqlite:///{file}",
            max_attempts=spec.realtime.max_deliveries,
            visibility_timeout_s=workers.visibility_timeout_s,
        )
    from batch_pipelines.realtime import WorkQueue

    return WorkQueue(
        file,
        name=workers.queue,
        max_attempts=spec.realtime.max_deliveries,
        visibility_timeout_s=workers.visibility_timeout_s,
    )


def worker_queue_depth(spec: PipelineSpec, engine: BatchEngineResource) -> int:
    """Items waiting or in flight in the pool's queue."""

    async def depth() -> int:
        queue = open_worker_queue(spec, engine)
        await queue.initialize()
        try:
            return (await queue.counts()).open
        finally:
            await queue.close()

    return asyncio.run(depth())


def build_worker_pool(spec: PipelineSpec) -> tuple[dg.JobDefinition, dg.SensorDefinition]:
    workers = _workers(spec)
    job = build_realtime_worker_job(
        pool=spec.name,
        provider=spec.provider,
        model=spec.model,
        open_queue_with=lambda engine: open_worker_queue(spec, engine),
        concurrency=workers.concurrency,
    )
    sensor = build_worker_scaling_sensor(
        pool=spec.name,
        worker_job=job,
        queue_depth_with=lambda engine: worker_queue_depth(spec, engine),
        max_workers=workers.max_workers,
        items_per_worker=workers.items_per_worker,
        minimum_interval_seconds=workers.sensor_interval_seconds,
    )
    return job, sensor
