"""The partitioned results asset: a finished job's answers as `<results root>/<pipeline>/<partition>.parquet`.

It is materialized by the completion sensor, with the job id in a run tag.
"""

import asyncio

import dagster as dg

from batch_pipelines.components.collection import CollectionOutcome, JobStillRunningError, collect_partition
from batch_pipelines.components.engine_session import latest_job_id, open_engine
from batch_pipelines.components.partition_repair import repair_unreadable_partition
from batch_pipelines.components.policies import (
    JOB_ATTEMPT_TAG,
    JOB_ID_TAG,
    STEP_RETRY_POLICY,
    failure_for_good,
)
from batch_pipelines.components.progress_metadata import job_progress_metadata
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.results_checks import (
    evaluate_results_checks,
    partition_tables_metadata,
    results_check_specs,
)
from batch_pipelines.components.submission_asset import submission_key
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec


def results_key(spec: PipelineSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "results"])


def build_results_asset(spec: PipelineSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = results_key(spec)

    @dg.asset(
        key=key,
        deps=[submission_key(spec)],
        partitions_def=partitions_def,
        group_name=spec.name,
        kinds={"parquet", "duckdb"},
        owners=spec.owners,
        code_version=spec_version(spec),
        retry_policy=STEP_RETRY_POLICY,
        check_specs=results_check_specs(spec, key),
        description=(
            f"Answers of pipeline {spec.name!r}, one Parquet file per partition; materialized by the "
            "completion sensor when the partition's batch job ends."
        ),
    )
    def results(context: dg.AssetExecutionContext, batch_engine: BatchEngineResource) -> dg.MaterializeResult:
        partition_key = context.partition_key
        layout = batch_engine.layout(spec)

        async def collect() -> CollectionOutcome:
            async with open_engine(batch_engine, spec) as engine:
                job_id = context.run.tags.get(JOB_ID_TAG) or await latest_job_id(
                    engine.store, spec, partition_key
                )
                if job_id is None:
                    missing = (
                        f"no batch job for partition {partition_key!r}; materialize its submission first"
                    )
                    raise failure_for_good(missing)
                for repaired in await repair_unreadable_partition(engine.store, spec, layout, partition_key):
                    context.log.warning(repaired)
                attempt = context.run.tags.get(JOB_ATTEMPT_TAG)
                return await collect_partition(
                    engine.manager,
                    spec,
                    layout,
                    partition_key,
                    job_id,
                    attempt=int(attempt) if attempt else None,
                )

        try:
            outcome = asyncio.run(collect())
        except JobStillRunningError as error:
            raise failure_for_good(error) from None
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
        return dg.MaterializeResult(
            check_results=checks.results,
            metadata={
                **job_progress_metadata(outcome.job),
                **partition_tables_metadata(outcome.tables, checks.input_items),
                "answered_this_run": dg.MetadataValue.int(outcome.answered_now),
                "resubmitted": dg.MetadataValue.int(outcome.resubmitted),
            },
        )

    return results
