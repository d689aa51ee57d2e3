"""The partitioned submission asset: hands a partition's pending requests to the engine, never waits."""

import asyncio

import dagster as dg

from batch_pipelines.components.engine_session import open_engine
from batch_pipelines.components.input_asset import input_key
from batch_pipelines.components.policies import STEP_RETRY_POLICY
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.submission import MissingInputError, SubmissionOutcome, submit_partition
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec

SUBMISSION_POOL = "batch_pipelines/submit"


def submission_key(spec: PipelineSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "submission"])


def build_submission_asset(
    spec: PipelineSpec, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        key=submission_key(spec),
        deps=[input_key(spec)],
        partitions_def=partitions_def,
        group_name=spec.name,
        kinds={spec.provider, "batch"},
        code_version=spec_version(spec),
        retry_policy=STEP_RETRY_POLICY,
        pool=SUBMISSION_POOL,
        description=(
            f"Submits pipeline {spec.name!r}'s unanswered requests for one partition as a {spec.provider} "
            f"batch ({spec.model}); the completion sensor collects it."
        ),
    )
    def submission(
        context: dg.AssetExecutionContext, batch_engine: BatchEngineResource
    ) -> dg.MaterializeResult:
        async def submit() -> SubmissionOutcome:
            async with open_engine(batch_engine, spec) as engine:
                return await submit_partition(
                    engine.manager, spec, batch_engine.layout(spec), context.partition_key
                )

        try:
            outcome = asyncio.run(submit())
        except MissingInputError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        metadata: dict[str, dg.RawMetadataValue] = {
            "items_submitted": outcome.submitted,
            "items_skipped": outcome.skipped_answered + outcome.skipped_dead,
            "items_already_answered": outcome.skipped_answered,
            "items_failed_for_good": outcome.skipped_dead,
        }
        if outcome.job is not None:
            metadata["job_id"] = outcome.job.id
            metadata["provider_batch_ids"] = ", ".join(outcome.job.provider_batch_ids)
            if outcome.job.cost.estimated_usd is not None:
                metadata["estimated_cost_usd"] = float(outcome.job.cost.estimated_usd)
            context.log.info(f"submitted {outcome.submitted} request(s) as job {outcome.job.id}")
        else:
            context.log.info("nothing to submit: every item is answered or failed for good")
        return dg.MaterializeResult(metadata=metadata)

    return submission
