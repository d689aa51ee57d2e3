"""Scaling realtime workers by queue depth, the Dagster way: a sensor asks for worker runs.

Each tick reads the queue depth (items waiting or in flight) and the worker runs already queued or
running (tagged ``batch_pipelines/worker_pool=<pool>``), and requests enough new runs to reach
``ceil(depth / items_per_worker)``, never more than ``max_workers``. Workers drain the queue and exit, so
the pool goes back to zero by itself when the queue is empty. Give the run queue the same ceiling
(``tag_concurrency_limits`` on the pool tag, see docs/deployment.md) so it holds even when ticks overlap
with runs still being launched.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dagster as dg

from batch_pipelines.components.resources import BatchEngineResource

WORKER_POOL_TAG = "batch_pipelines/worker_pool"
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def workers_wanted(depth: int, items_per_worker: int, max_workers: int) -> int:
    return min(max_workers, math.ceil(depth / items_per_worker)) if depth > 0 else 0


def build_worker_scaling_sensor(
    *,
    pool: str,
    worker_job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition,
    queue_depth: Callable[[], int] | None = None,
    queue_depth_with: Callable[[BatchEngineResource], int] | None = None,
    max_workers: int,
    items_per_worker: int = 1_000,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """A sensor launching ``worker_job`` runs for the queue ``queue_depth()`` reads (e.g. an
    ``SqsWorkQueue``'s depth, or a ``WorkQueue``'s open count), or ``queue_depth_with(batch_engine)``
    where finding the queue depends on that resource."""
    if max_workers < 1 or items_per_worker < 1:
        raise ValueError("max_workers and items_per_worker must be at least 1")
    if (queue_depth is None) == (queue_depth_with is None):
        raise ValueError("give exactly one of queue_depth and queue_depth_with")

    def scale(context: dg.SensorEvaluationContext, depth: int) -> dg.SensorResult | dg.SkipReason:
        active = context.instance.get_runs_count(
            dg.RunsFilter(statuses=ACTIVE_STATUSES, tags={WORKER_POOL_TAG: pool})
        )
        missing = workers_wanted(depth, items_per_worker, max_workers) - active
        if missing <= 0:
            return dg.SkipReason(f"queue depth {depth}, {active} worker run(s) active: nothing to add")
        tick = int(context.cursor or 0) + 1
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=f"{pool}:{tick}:{index}", tags={WORKER_POOL_TAG: pool})
                for index in range(missing)
            ],
            cursor=str(tick),
        )

    sensor = dg.sensor(
        name=f"{pool}_worker_scaling",
        job=worker_job,
        minimum_interval_seconds=minimum_interval_seconds,
        description=f"Launches up to {max_workers} worker runs for pool {pool!r}, one per "
        f"{items_per_worker} queued items; none when the queue is empty.",
    )
    if queue_depth is not None:
        read = queue_depth

        def scale_by_depth(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
            return scale(context, read())

        return sensor(scale_by_depth)
    assert queue_depth_with is not None
    read_with = queue_depth_with

    def scale_by_engine_depth(
        context: dg.SensorEvaluationContext, batch_engine: BatchEngineResource
    ) -> dg.SensorResult | dg.SkipReason:
        return scale(context, read_with(batch_engine))

    return sensor(scale_by_engine_depth)
