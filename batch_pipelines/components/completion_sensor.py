"""The completion sensor: refreshes a bounded page of a pipeline's open jobs each tick, reports their
progress as asset observations, and requests the results run of every job that has ended.

The cursor is the last job id of the page, so 1,000 open jobs are covered a page at a time, each tick far
inside the sensor timeout. A run_key names the job, its provider batches and its attempt: Dagster never
launches the same key twice, and a resubmitted attempt gets a new key.
"""

import asyncio
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from batch_pipelines.components.engine_session import open_engine, page_open_jobs
from batch_pipelines.components.policies import JOB_ID_TAG, partition_tags
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.engine.models import BatchJob
from batch_pipelines.pipeline.spec import PipelineSpec


@dataclass(frozen=True)
class TickOutcome:
    refreshed: list[BatchJob]
    next_cursor: str | None


def completion_run_key(job: BatchJob) -> str:
    return f"{job.id}:{','.join(job.provider_batch_ids)}:{job.attempt}"


def progress_observation(asset_key: dg.AssetKey, job: BatchJob) -> dg.AssetObservation:
    progress, cost = job.progress, job.cost
    metadata: dict[str, dg.RawMetadataValue] = {
        "job_id": job.id,
        "status": job.status.value,
        "detail": job.detail,
        "attempt": job.attempt,
        "total": progress.total,
        "completed": progress.completed,
        "failed": progress.failed,
        "percent": float(progress.percent),
    }
    optional = {
        "items_per_hour": progress.items_per_hour,
        "eta_seconds": progress.eta_seconds,
        "estimated_cost_usd": cost.estimated_usd,
        "actual_cost_usd": cost.actual_usd,
        "saved_usd": cost.saved_usd,
    }
    metadata.update({name: float(value) for name, value in optional.items() if value is not None})
    return dg.AssetObservation(
        asset_key=asset_key, partition=job.metadata.get("partition_key"), metadata=metadata
    )


def build_completion_sensor(
    spec: PipelineSpec, results_job: UnresolvedAssetJobDefinition, results_key: dg.AssetKey
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{spec.name}_completion_sensor",
        job=results_job,
        minimum_interval_seconds=spec.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Collects finished batch jobs of pipeline {spec.name!r} into its results asset.",
    )
    def completion_sensor(
        context: dg.SensorEvaluationContext, batch_engine: BatchEngineResource
    ) -> dg.SensorResult:
        async def tick() -> TickOutcome:
            async with open_engine(batch_engine, spec) as engine:
                page, next_cursor = await page_open_jobs(
                    engine.store, spec, after=context.cursor or None, limit=batch_engine.sensor_page_size
                )
                refreshed = [await engine.manager.refresh(job.id) for job in page]
                return TickOutcome(refreshed=refreshed, next_cursor=next_cursor)

        outcome = asyncio.run(tick())
        run_requests = []
        for job in outcome.refreshed:
            if job.status.is_terminal:
                partition_key = job.metadata["partition_key"]
                run_requests.append(
                    dg.RunRequest(
                        run_key=completion_run_key(job),
                        partition_key=partition_key,
                        tags={JOB_ID_TAG: job.id, **partition_tags(spec.name, partition_key)},
                    )
                )
        return dg.SensorResult(
            run_requests=run_requests,
            asset_events=[progress_observation(results_key, job) for job in outcome.refreshed],
            cursor=outcome.next_cursor or "",
        )

    return completion_sensor
