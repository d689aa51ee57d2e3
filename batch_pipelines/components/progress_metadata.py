"""The numeric progress and cost metadata every pipeline event carries, under one set of keys.

The submission materialization, each completion-sensor observation and the results materialization all
describe a batch job with these keys, so the Dagster UI's Plots tab draws each one per partition over
time. Values Dagster cannot plot (unknown rate or ETA before the first item ends, cost of a model without
a price) are left out rather than written as a placeholder that would distort the plot.
"""

from __future__ import annotations

import dagster as dg

from batch_pipelines.engine.models import BatchJob

ITEMS_TOTAL = "items_total"
ITEMS_DONE = "items_done"
ITEMS_FAILED = "items_failed"
PERCENT_DONE = "percent_done"
ITEMS_PER_HOUR = "items_per_hour"
ETA_SECONDS = "eta_seconds"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
COST_USD = "cost_usd"
ESTIMATED_COST_USD = "estimated_cost_usd"  # the worst case, under its older name
EXPECTED_COST_USD = "expected_cost_usd"
WORST_CASE_COST_USD = "worst_case_cost_usd"
COST_FORECAST = "cost_forecast"  # text: where the expected figure comes from
REALTIME_COST_USD = "realtime_cost_usd"
COST_SAVED_USD = "cost_saved_usd"

ALWAYS_PRESENT = (ITEMS_TOTAL, ITEMS_DONE, ITEMS_FAILED, PERCENT_DONE, INPUT_TOKENS, OUTPUT_TOKENS)


def job_progress_metadata(job: BatchJob) -> dict[str, dg.MetadataValue]:
    """The job's progress and cost as plottable metadata, plus its id and status as text."""
    progress, cost = job.progress, job.cost
    metadata: dict[str, dg.MetadataValue] = {
        "job_id": dg.MetadataValue.text(job.id),
        "status": dg.MetadataValue.text(job.status.value),
        "attempt": dg.MetadataValue.int(job.attempt),
        ITEMS_TOTAL: dg.MetadataValue.int(progress.total),
        ITEMS_DONE: dg.MetadataValue.int(progress.completed),
        ITEMS_FAILED: dg.MetadataValue.int(progress.failed),
        PERCENT_DONE: dg.MetadataValue.float(float(progress.percent)),
        INPUT_TOKENS: dg.MetadataValue.int(cost.input_tokens),
        OUTPUT_TOKENS: dg.MetadataValue.int(cost.output_tokens),
    }
    optional = {
        ITEMS_PER_HOUR: progress.items_per_hour,
        ETA_SECONDS: progress.eta_seconds,
        COST_USD: cost.actual_usd,
        ESTIMATED_COST_USD: cost.estimated_usd,
        EXPECTED_COST_USD: cost.expected_usd,
        WORST_CASE_COST_USD: cost.worst_case_usd,
        REALTIME_COST_USD: cost.realtime_usd,
        COST_SAVED_USD: cost.saved_usd,
    }
    for key, value in optional.items():
        if value is not None:
            metadata[key] = dg.MetadataValue.float(float(value))
    if cost.forecast_basis:
        metadata[COST_FORECAST] = dg.MetadataValue.text(cost.forecast_basis)
    return metadata


def progress_observation(asset_key: dg.AssetKey, job: BatchJob) -> dg.AssetObservation:
    """The job's progress as an observation of its partition of `asset_key` (the results asset)."""
    metadata: dict[str, dg.RawMetadataValue] = {**job_progress_metadata(job), "detail": job.detail}
    return dg.AssetObservation(
        asset_key=asset_key, partition=job.metadata.get("partition_key"), metadata=metadata
    )
