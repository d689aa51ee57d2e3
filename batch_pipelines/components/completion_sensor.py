"""The completion sensor: refreshes a bounded page of a pipeline's open jobs each tick, reports their
progress as asset observations, and requests one results run for each job attempt that has ended.

The cursor remembers where the page of open jobs stopped, so 1,000 open jobs are covered a page at a
time, each tick far inside the sensor timeout. It also remembers how far it has looked at ended jobs
(`EndedJobsCursor`): each tick reads only the jobs that ended since — whether this sensor saw them end or
another process did (a status command, a results step that waited for its job) — so a finished job is
requested once, not on every tick. A run_key names the job, its provider batches and its attempt: Dagster
never launches the same key twice, and a resubmitted attempt gets a new key.

An ended job gets no run when the partition's latest results materialization already holds that attempt
(a backfill's results step collected it), and waits for a later tick (a few at most) while a run that
materializes the partition's results is queued or running.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from batch_pipelines.components.engine_session import job_id_prefix, open_engine, page_jobs
from batch_pipelines.components.policies import JOB_ATTEMPT_TAG, JOB_ID_TAG, partition_tags
from batch_pipelines.components.progress_metadata import progress_observation
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.results_coverage import results_hold_attempt, results_run_under_way
from batch_pipelines.engine import BatchStore
from batch_pipelines.engine.models import BatchJob
from batch_pipelines.pipeline.spec import PipelineSpec

# Ends are read again this far behind the newest one seen: an end recorded late (a commit that waited
# on a lock, another machine's clock) is still found; the cursor keeps the ones already handled.
LATE_END_MARGIN_S = 300.0
# Ticks an end waits for a results run under way to materialize it before it is requested anyway (a run
# killed with its worker stays "started" in Dagster until run monitoring notices).
MAX_WAITING_TICKS = 3


@dataclass(frozen=True)
class EndedJobsCursor:
    """How far the sensor has looked at ended jobs: `seen_through` is the newest end handled (epoch
    seconds); `handled` the ends within the margin behind it that were requested or found collected;
    `waiting` the ends whose partition had a results run under way (looked at again each tick, for at
    most MAX_WAITING_TICKS: `waited` counts them)."""

    seen_through: float = 0.0
    handled: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)
    waited: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: object) -> EndedJobsCursor:
        if not isinstance(data, dict):
            return cls()
        return cls(
            seen_through=float(data.get("seen_through") or 0.0),
            handled=_ends(data.get("handled")),
            waiting=_ends(data.get("waiting")),
            waited={job_id: int(ticks) for job_id, ticks in _ends(data.get("waited")).items()},
        )

    def to_json(self) -> dict[str, object]:
        return {
            "seen_through": self.seen_through,
            "handled": self.handled,
            "waiting": self.waiting,
            "waited": self.waited,
        }

    def after(self, handled: dict[str, float], waiting: dict[str, float]) -> EndedJobsCursor:
        """The cursor once these ends were handled or left waiting."""
        seen_through = max([self.seen_through, *handled.values(), *waiting.values()])
        recent = {
            job_id: finished
            for job_id, finished in {**self.handled, **handled}.items()
            if finished > seen_through - LATE_END_MARGIN_S and job_id not in waiting
        }
        waited = {job_id: self.waited.get(job_id, 0) + 1 for job_id in waiting}
        return EndedJobsCursor(seen_through, recent, waiting, waited)


@dataclass(frozen=True)
class SensorCursor:
    open_after: str | None = None
    ended: EndedJobsCursor = field(default_factory=EndedJobsCursor)

    @classmethod
    def parse(cls, text: str | None) -> SensorCursor:
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls(open_after=data.get("open_after"), ended=EndedJobsCursor.parse(data.get("ended")))

    def serialize(self) -> str:
        return json.dumps({"open_after": self.open_after, "ended": self.ended.to_json()})


@dataclass(frozen=True)
class TickOutcome:
    refreshed: list[BatchJob]
    ended: list[tuple[BatchJob, float]]  # each with the end time the store recorded
    open_after: str | None


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


async def unhandled_ends(
    store: BatchStore, spec: PipelineSpec, cursor: EndedJobsCursor, limit: int
) -> list[tuple[BatchJob, float]]:
    """Up to `limit` jobs that ended since the cursor, plus those left waiting, each with its end time."""
    known = {**cursor.handled, **cursor.waiting}
    rows = await store.ended_job_ids(
        id_prefix=job_id_prefix(spec),
        finished_after=cursor.seen_through - LATE_END_MARGIN_S,
        limit=limit + len(known),
    )
    fresh = [(job_id, finished) for job_id, finished in rows if known.get(job_id) != finished][:limit]
    ended = []
    for job_id, finished in {**cursor.waiting, **dict(fresh)}.items():
        job = await store.get_job(job_id)
        if job.status.is_terminal:  # (a waiting job may have been reopened since: its next end is fresh)
            ended.append((job, finished))
    return ended


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
                ended = await unhandled_ends(engine.store, spec, cursor.ended, limit)
                return TickOutcome(refreshed, ended, open_after)

        outcome = asyncio.run(tick())
        requests: list[dg.RunRequest] = []
        handled: dict[str, float] = {}
        waiting: dict[str, float] = {}
        for job, finished in outcome.ended:
            partition_key = job.metadata["partition_key"]
            if results_hold_attempt(context.instance, results_key, partition_key, job.id, job.attempt):
                handled[job.id] = finished
            elif cursor.ended.waited.get(job.id, 0) < MAX_WAITING_TICKS and results_run_under_way(
                context.instance, results_key, results_job.name, partition_key
            ):
                waiting[job.id] = finished
            else:
                requests.append(results_run_request(spec, job))
                handled[job.id] = finished
        ended_cursor = cursor.ended.after(handled, waiting)
        return dg.SensorResult(
            run_requests=requests,
            asset_events=[progress_observation(results_key, job) for job in outcome.refreshed],
            cursor=SensorCursor(outcome.open_after, ended_cursor).serialize(),
        )

    return completion_sensor


def _ends(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(job_id): float(finished) for job_id, finished in value.items()}
