"""The partitioned submission asset: hands a partition's pending requests to the engine, never waits."""

import asyncio
from typing import Any

import dagster as dg

from batch_pipelines.components.engine_session import open_engine
from batch_pipelines.components.input_asset import input_key
from batch_pipelines.components.policies import STEP_RETRY_POLICY, failure_for_good
from batch_pipelines.components.progress_metadata import job_progress_metadata
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.submission import MissingInputError, SubmissionOutcome, submit_partition
from batch_pipelines.engine import BudgetExceededError, ProviderError
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec

SUBMISSION_POOL = "batch_pipelines/submit"


def submission_key(spec: PipelineSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "submission"])


def submission_asset_args(
    spec: PipelineSpec, partitions_def: dg.PartitionsDefinition, description: str
) -> dict[str, Any]:
    """What a pipeline's submission asset is in the asset graph, whichever mode fills it."""
    return {
        "key": submission_key(spec),
        "deps": [input_key(spec)],
        "partitions_def": partitions_def,
        "group_name": spec.name,
        "kinds": {spec.provider, "batch"},
        "owners": spec.owners,
        "code_version": spec_version(spec),
        "retry_policy": STEP_RETRY_POLICY,
        "pool": SUBMISSION_POOL,
        "description": description,
    }


def submission_step_error(error: Exception) -> Exception:
    """How a submission error reaches Dagster: a transient provider error as itself (the step retry may
    help); anything a retry would meet again (missing input, budget, refused key or request) for good."""
    if isinstance(error, ProviderError) and error.retryable:
        return error
    return failure_for_good(error)


def build_submission_asset(
    spec: PipelineSpec, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        **submission_asset_args(
            spec,
            partitions_def,
            f"Submits pipeline {spec.name!r}'s unanswered requests for one partition as a {spec.provider} "
            f"batch ({spec.model}); the completion sensor collects it.",
        )
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
        except (MissingInputError, BudgetExceededError, ProviderError) as error:
            raise submission_step_error(error) from None
        metadata = submission_metadata(outcome)
        if outcome.job is not None:
            context.log.info(f"submitted {outcome.submitted} request(s) as job {outcome.job.id}")
        else:
            context.log.info("nothing to submit: every item is answered or failed for good")
        return dg.MaterializeResult(metadata=metadata)

    return submission


def submission_metadata(outcome: SubmissionOutcome) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "items_submitted": dg.MetadataValue.int(outcome.submitted),
        "items_skipped": dg.MetadataValue.int(outcome.skipped_answered + outcome.skipped_dead),
        "items_already_answered": dg.MetadataValue.int(outcome.skipped_answered),
        "items_failed_for_good": dg.MetadataValue.int(outcome.skipped_dead),
    }
    if outcome.job is not None:
        metadata.update(job_progress_metadata(outcome.job))
        metadata["provider_batch_ids"] = dg.MetadataValue.text(", ".join(outcome.job.provider_batch_ids))
    return metadata
