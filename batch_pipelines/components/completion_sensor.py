"""The completion sensor: refreshes a bounded page of a pipeline's open jobs each tick, reports their
progress as asset observations, and requests the results run of every job that has ended.

The cursor remembers where the page stopped, so 1,000 open jobs are covered a page at a time, each tick far
inside the sensor timeout. A run_key names the job, its provider batches and its attempt: Dagster never
launches the same key twice, and a resubmitted attempt gets a new key.

A job can also end outside a tick that sees it change (another process refreshed it, or a tick failed after
refreshing), so each tick also sweeps one page of the pipeline's ended jobs and requests their results
runs again; Dagster drops the keys it has already launched.
"""

import asyncio
import json
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from batch_pipelines.components.engine_session import open_engine, page_jobs
from batch_pipelines.components.policies import JOB_ATTEMPT_TAG, JOB_ID_TAG, partition_tags
from batch_pipelines.components.progress_metadata import job_progress_metadata
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.engine.models import BatchJob
from batch_pipelines.pipeline.spec import PipelineSpec


@dataclass(frozen=True)
class SensorCursor:
    open_after: str | None = None
    sweep_after: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls(open_after=data.get("open_after"), sweep_after=data.get("sweep_after"))

    def serialize(self) -> str:
        return json.dumps({"open_after": self.open_after, "sweep_after": self.sweep_after})


@dataclass(frozen=True)
class TickOutcome:
    refreshed: list[BatchJob]
    swept: list[BatchJob]
    cursor: SensorCursor


def completion_run_key(job: BatchJob) -> str:
    return f"{job.id}:{','.join(job.provider_batch_ids)}:{job.attempt}"


def results_run_request(spec: PipelineSpec, job: BatchJob) -> dg.RunRequest:
    partition_key = job.metadata["partition_key"]
    return dg.RunRequest(
        run_key=completion_run_key(job),
        partition_key=partition_key,
        tags={
            JOB_ID_TAG: job.id,
            JOB_ATTEMPT_TAG: str(job.attempt),
            **partition_tags(spec.name, partition_key),
        },
    )


def progress_observation(asset_key: dg.AssetKey, job: BatchJob) -> dg.AssetObservation:
    metadata: dict[str, dg.RawMetadataValue] = {**job_progress_metadata(job), "detail": job.detail}
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
        cursor = SensorCursor.parse(context.cursor)
        limit = batch_engine.sensor_page_size

        async def tick() -> TickOutcome:
            async with open_engine(batch_engine, spec) as engine:
                page, open_after = await page_jobs(engine.store, spec, after=cursor.open_after, limit=limit)
                refreshed = [await engine.manager.refresh(job.id) for job in page]
                swept, sweep_after = await page_jobs(
                    engine.store, spec, after=cursor.sweep_after, limit=limit, open_only=False
                )
                return TickOutcome(refreshed, swept, SensorCursor(open_after, sweep_after))

        outcome = asyncio.run(tick())
        ended = {job.id: job for job in [*outcome.swept, *outcome.refreshed] if job.status.is_terminal}
        return dg.SensorResult(
            run_requests=[results_run_request(spec, job) for job in ended.values()],
            asset_events=[progress_observation(results_key, job) for job in outcome.refreshed],
            cursor=outcome.cursor.serialize(),
        )

    return completion_sensor
