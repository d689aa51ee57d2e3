"""The assets of `mode: realtime` and `mode: auto` pipelines.

`realtime`: the results asset itself answers the partition through the realtime package (the provider's
synchronous API, the shared `rate_limiter` budget, a work queue under the working folder) and writes the
results and dead letters at once; no batch job, no sensor round trip.

`auto`: the submission asset answers the urgent items realtime first (their results are in the
partition's files when it returns), then submits the rest as a batch job exactly as `mode: batch` does;
the completion sensor collects that job into the same files, keeping the realtime rows.

This layer never speaks HTTP: it builds the client with `make_realtime_provider` and hands it over.
"""

import asyncio
from dataclasses import dataclass

import dagster as dg

from batch_pipelines.components.engine_session import open_engine
from batch_pipelines.components.input_asset import input_key
from batch_pipelines.components.policies import STEP_RETRY_POLICY, failure_for_good
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource, default_limiter_url
from batch_pipelines.components.realtime_partition import (
    PriorityColumnError,
    RealtimePartitionOutcome,
    answer_partition_realtime,
    limiter_key,
    realtime_job_id,
)
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.results_asset import results_key
from batch_pipelines.components.results_checks import (
    evaluate_results_checks,
    partition_tables_metadata,
    results_check_specs,
)
from batch_pipelines.components.submission import MissingInputError, SubmissionOutcome, submit_partition
from batch_pipelines.components.submission_asset import (
    submission_asset_args,
    submission_metadata,
    submission_step_error,
)
from batch_pipelines.engine import BatchStore, BudgetExceededError, ProviderError
from batch_pipelines.engine.spend import SpendLedger, SpendScope
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import make_realtime_provider


@dataclass(frozen=True)
class RealtimeCallSetup:
    spec: PipelineSpec
    batch_engine: BatchEngineResource
    rate_limiter: RateLimiterResource


async def answer_realtime(
    setup: RealtimeCallSetup, partition_key: str, *, urgent_only: bool
) -> RealtimePartitionOutcome:
    """Answer a partition (or its urgent items) with a client and limiter opened for this run only."""
    spec, engine, limits = setup.spec, setup.batch_engine, setup.rate_limiter
    limiter = RateLimiter.from_url(
        limits.url or default_limiter_url(),
        requests_per_minute=spec.realtime.requests_per_minute or limits.requests_per_minute,
        tokens_per_minute=spec.realtime.tokens_per_minute or limits.tokens_per_minute,
        key=limiter_key(spec),
        burst_seconds=limits.burst_seconds,
    )
    client = make_realtime_provider(
        spec.provider,
        model=spec.model,
        base_url=engine.base_url,
        api_key=engine.provider_key(),
        max_connections=spec.realtime.concurrency,
    )
    layout = engine.layout(spec)
    layout.workdir.mkdir(parents=True, exist_ok=True)
    store = BatchStore(engine.store_location())  # the spend ledger, beside the batch jobs
    scope = SpendScope(
        spec.name, partition_key, realtime_job_id(spec, partition_key), spec.provider, spec.model
    )
    try:
        await store.initialize()
        return await answer_partition_realtime(
            spec,
            layout,
            partition_key,
            provider_client=client,
            limiter=limiter,
            urgent_only=urgent_only,
            spend=SpendLedger(store, scope),
        )
    finally:
        await client.aclose()
        await limiter.close_async()
        await store.close()


def realtime_metadata(outcome: RealtimePartitionOutcome) -> dict[str, dg.MetadataValue]:
    """The run's realtime figures; `realtime_cost_usd` is what every call this run paid for cost (packs
    whose answer could not be used included)."""
    summary = outcome.summary
    return {
        "realtime_items_queued": dg.MetadataValue.int(outcome.queued),
        "realtime_items_already_settled": dg.MetadataValue.int(outcome.skipped_settled),
        "realtime_answered_this_run": dg.MetadataValue.int(summary.answered),
        "realtime_dead_lettered_this_run": dg.MetadataValue.int(summary.dead_lettered),
        "realtime_requests_sent": dg.MetadataValue.int(summary.requests_sent),
        "realtime_rate_limited": dg.MetadataValue.int(summary.rate_limited),
        "realtime_cost_usd": dg.MetadataValue.float(summary.cost_usd),
    }


def build_realtime_results_asset(
    spec: PipelineSpec, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    key = results_key(spec)

    @dg.asset(
        key=key,
        deps=[input_key(spec)],
        partitions_def=partitions_def,
        group_name=spec.name,
        kinds={spec.provider, "parquet", "duckdb"},
        owners=spec.owners,
        code_version=spec_version(spec),
        retry_policy=STEP_RETRY_POLICY,
        check_specs=results_check_specs(spec, key),
        description=(
            f"Answers of pipeline {spec.name!r}, one Parquet file per partition, from {spec.provider}'s "
            f"realtime API ({spec.model}) under the shared rate limit."
        ),
    )
    def results(
        context: dg.AssetExecutionContext,
        batch_engine: BatchEngineResource,
        rate_limiter: RateLimiterResource,
    ) -> dg.MaterializeResult:
        setup = RealtimeCallSetup(spec, batch_engine, rate_limiter)

        try:
            outcome = asyncio.run(answer_realtime(setup, context.partition_key, urgent_only=False))
        except (MissingInputError, PriorityColumnError) as error:
            raise failure_for_good(error) from None
        context.log.info(
            f"answered {outcome.summary.answered} item(s) realtime, dead-lettered "
            f"{outcome.summary.dead_lettered}; {outcome.skipped_settled} were already settled"
        )
        checks = evaluate_results_checks(
            spec, batch_engine.layout(spec), context.partition_key, outcome.tables, retry_in_flight=0
        )
        return dg.MaterializeResult(
            check_results=checks.results,
            metadata={
                **realtime_metadata(outcome),
                **partition_tables_metadata(outcome.tables, checks.input_items),
            },
        )

    return results


def build_auto_submission_asset(
    spec: PipelineSpec, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        **submission_asset_args(
            spec,
            partitions_def,
            f"Answers pipeline {spec.name!r}'s urgent items of one partition realtime now, then submits the "
            f"rest as a {spec.provider} batch ({spec.model}); the completion sensor collects it.",
        )
    )
    def submission(
        context: dg.AssetExecutionContext,
        batch_engine: BatchEngineResource,
        rate_limiter: RateLimiterResource,
    ) -> dg.MaterializeResult:
        setup = RealtimeCallSetup(spec, batch_engine, rate_limiter)

        async def answer_then_submit() -> tuple[RealtimePartitionOutcome, SubmissionOutcome]:
            urgent = await answer_realtime(setup, context.partition_key, urgent_only=True)
            # The urgent items are in the results file now, so the batch gets only the rest.
            async with open_engine(batch_engine, spec) as engine:
                rest = await submit_partition(
                    engine.manager, spec, batch_engine.layout(spec), context.partition_key
                )
            return urgent, rest

        try:
            urgent, rest = asyncio.run(answer_then_submit())
        except (MissingInputError, PriorityColumnError, BudgetExceededError, ProviderError) as error:
            raise submission_step_error(error) from None
        context.log.info(
            f"answered {urgent.summary.answered} urgent item(s) realtime; submitted {rest.submitted} "
            + (f"as job {rest.job.id}" if rest.job else "(no batch job needed)")
        )
        # The batch job's `realtime_cost_usd` (its tokens at the realtime price) is 0 at submission; the
        # figure this run reports is what its realtime calls cost.
        return dg.MaterializeResult(metadata={**submission_metadata(rest), **realtime_metadata(urgent)})

    return submission
