"""The partitioned results asset: a finished job's answers as `<results root>/<pipeline>/<partition>.parquet`.

The completion sensor materializes it when a partition's job ends, with the job id and attempt in run
tags. A run that reaches it while the job still runs (a whole-graph backfill, "Materialize all") waits
up to `results_wait_seconds`, reporting progress as observations; a job still running after that is left
to the sensor and the step ends without materializing (the asset is skippable, so the run stays green).
"""

import asyncio
from collections.abc import Iterator

import dagster as dg

from batch_pipelines.components.collection import (
    CollectionOutcome,
    JobStillRunningError,
    collect_partition,
    partition_tables,
)
from batch_pipelines.components.engine_session import EngineSession, latest_job_id, open_engine
from batch_pipelines.components.job_wait import poll_interval_s, wait_for_job_end
from batch_pipelines.components.partition_repair import repair_unreadable_partition
from batch_pipelines.components.policies import (
    JOB_ATTEMPT_TAG,
    JOB_ID_TAG,
    STEP_RETRY_POLICY,
    failure_for_good,
)
from batch_pipelines.components.progress_metadata import job_progress_metadata, progress_observation
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.results_checks import (
    evaluate_results_checks,
    partition_tables_metadata,
    results_check_specs,
)
from batch_pipelines.components.results_coverage import results_hold_attempt
from batch_pipelines.components.submission_asset import submission_key
from batch_pipelines.engine import BatchJob
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec


def results_key(spec: PipelineSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "results"])


def build_results_asset(spec: PipelineSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = results_key(spec)

    @dg.multi_asset(
        name=f"{spec.name}__results",
        specs=[
            dg.AssetSpec(
                key,
                deps=[submission_key(spec)],
                group_name=spec.name,
                kinds={"parquet", "duckdb"},
                owners=spec.owners,
                code_version=spec_version(spec),
                # A step that leaves a running job to the sensor materializes nothing (and no checks).
                skippable=True,
                description=(
                    f"Answers of pipeline {spec.name!r}, one Parquet file per partition; materialized by "
                    "the completion sensor when the partition's batch job ends, or by a run of the whole "
                    "graph that finds the job ended within results_wait_seconds."
                ),
            )
        ],
        partitions_def=partitions_def,
        retry_policy=STEP_RETRY_POLICY,
        check_specs=results_check_specs(spec, key),
        can_subset=True,  # the checks can run alone, over the files as they are
    )
    def results(
        context: dg.AssetExecutionContext, batch_engine: BatchEngineResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        if key not in context.selected_asset_keys:
            yield from checks_over_files_as_they_are(context, spec, batch_engine)
            return
        partition_key = context.partition_key
        layout = batch_engine.layout(spec)

        def report_progress(job: BatchJob) -> None:
            context.log_event(progress_observation(key, job))

        async def collect(engine: EngineSession) -> CollectionOutcome | None:
            tagged_job = context.run.tags.get(JOB_ID_TAG)
            job_id = tagged_job or await latest_job_id(engine.store, spec, partition_key)
            if job_id is None:
                raise failure_for_good(
                    f"no batch job for partition {partition_key!r}; materialize its submission first"
                )
            tagged_attempt = context.run.tags.get(JOB_ATTEMPT_TAG)
            attempt = int(tagged_attempt) if tagged_attempt else None
            if attempt is not None and results_hold_attempt(
                context.instance, key, partition_key, job_id, attempt
            ):
                context.log.info(
                    f"attempt {attempt} of job {job_id!r} is already in this partition's results (another "
                    "run collected it); nothing to do"
                )
                return None
            job = await wait_for_job_end(
                engine.manager,
                job_id,
                # a run the sensor requested is for an ended attempt: it never waits
                timeout_s=0 if attempt is not None else spec.results_wait_seconds,
                poll_s=poll_interval_s(spec.sensor_interval_seconds),
                on_progress=report_progress,
            )
            for repaired in await repair_unreadable_partition(engine.store, spec, layout, partition_key):
                context.log.warning(repaired)
            try:
                return await collect_partition(
                    engine.manager, spec, layout, partition_key, job_id, attempt=attempt
                )
            except JobStillRunningError:
                report_progress(job)
                context.log.info(
                    f"job {job_id!r} is {job.status.value} ({job.detail}), {job.progress.percent:.0f}% done; "
                    "the completion sensor requests this partition's results run when it ends"
                )
                return None

        async def in_engine() -> CollectionOutcome | None:
            async with open_engine(batch_engine, spec) as engine:
                return await collect(engine)

        outcome = asyncio.run(in_engine())
        if outcome is None:
            return
        if outcome.collected_elsewhere:
            context.log.info(
                f"another run collected this attempt and resubmitted; attempt {outcome.job.attempt} is "
                "running, and the completion sensor requests its results run when it ends"
            )
        in_flight = outcome.resubmitted or int(outcome.collected_elsewhere)
        checks = evaluate_results_checks(spec, layout, partition_key, outcome.tables, in_flight)
        if outcome.resubmitted:
            context.log.info(
                f"resubmitted {outcome.resubmitted} transient failure(s) as attempt {outcome.job.attempt}"
            )
        yield dg.MaterializeResult(
            asset_key=key,
            check_results=[check for check in checks.results if _selected(context, key, check)],
            metadata={
                **job_progress_metadata(outcome.job),
                **partition_tables_metadata(outcome.tables, checks.input_items),
                "answered_this_run": dg.MetadataValue.int(outcome.answered_now),
                "resubmitted": dg.MetadataValue.int(outcome.resubmitted),
            },
        )

    return results


def checks_over_files_as_they_are(
    context: dg.AssetExecutionContext, spec: PipelineSpec, batch_engine: BatchEngineResource
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks alone (the UI's "Execute checks"), over the files of the partition whose
    materialization they describe: the latest one. A partition whose job is still running is expected
    to miss items (a warning)."""
    key = results_key(spec)
    latest = context.instance.get_latest_materialization_event(key)
    materialization = latest.asset_materialization if latest is not None else None
    partition_key = materialization.partition if materialization is not None else None
    if partition_key is None:
        for check_key in context.selected_asset_check_keys:
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=check_key.name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"reason": "no partition of the results has been materialized yet"},
            )
        return

    async def job_still_open() -> bool:
        async with open_engine(batch_engine, spec) as engine:
            job_id = await latest_job_id(engine.store, spec, partition_key)
            return job_id is not None and not (await engine.store.get_job(job_id)).status.is_terminal

    layout = batch_engine.layout(spec)
    tables = partition_tables(spec, layout, partition_key)
    in_flight = int(asyncio.run(job_still_open()))
    checks = evaluate_results_checks(spec, layout, partition_key, tables, in_flight)
    for check in checks.results:
        if _selected(context, key, check):
            partition = dg.MetadataValue.text(partition_key)
            yield check._replace(metadata={**check.metadata, "partition": partition})


def _selected(context: dg.AssetExecutionContext, key: dg.AssetKey, check: dg.AssetCheckResult) -> bool:
    return dg.AssetCheckKey(key, check.check_name or "") in context.selected_asset_check_keys
