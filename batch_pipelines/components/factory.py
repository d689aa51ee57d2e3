"""`build_pipeline_defs(spec)`: everything one declared pipeline becomes in Dagster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from batch_pipelines.components.completion_sensor import build_completion_sensor
from batch_pipelines.components.input_asset import build_input_asset, input_key
from batch_pipelines.components.nightly_schedule import build_nightly_schedule
from batch_pipelines.components.partitions import partitions_for
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.components.realtime_assets import (
    build_auto_submission_asset,
    build_realtime_results_asset,
)
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.results_asset import build_results_asset, results_key
from batch_pipelines.components.submission_asset import build_submission_asset, submission_key
from batch_pipelines.components.worker_pool import build_worker_pool
from batch_pipelines.pipeline.spec import PipelineSpec, parse_pipeline_spec


def submit_job_name(spec: PipelineSpec) -> str:
    return f"{spec.name}_submit_job"


def results_job_name(spec: PipelineSpec) -> str:
    return f"{spec.name}_results_job"


def build_pipeline_defs(
    spec: PipelineSpec | Mapping[str, Any],
    *,
    batch_engine: BatchEngineResource | None = None,
    rate_limiter: RateLimiterResource | None = None,
) -> dg.Definitions:
    """The assets, jobs, sensor and schedule of one pipeline (plus, with `workers`, the worker job and
    its scaling sensor).

    `spec` is a PipelineSpec or a mapping (e.g. parsed YAML); a bad one raises PipelineSpecError naming the
    field. Pass `batch_engine` (and, for `mode: realtime|auto`, `rate_limiter`) to bind the resources here;
    otherwise the code location provides them.
    """
    spec = parse_pipeline_spec(spec)
    defs = _pipeline_defs(spec, _bound(batch_engine, rate_limiter))
    if spec.workers is None:
        return defs
    worker_job, scaling_sensor = build_worker_pool(spec)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[worker_job], sensors=[scaling_sensor]))


def _pipeline_defs(spec: PipelineSpec, resources: dict[str, Any] | None) -> dg.Definitions:
    partitions_def = partitions_for(spec)
    if spec.mode == "realtime":
        return _realtime_defs(spec, partitions_def, resources)
    submit_job = dg.define_asset_job(
        submit_job_name(spec),
        selection=dg.AssetSelection.assets(input_key(spec), submission_key(spec)),
        description=f"Reads and submits one partition of pipeline {spec.name!r}.",
    )
    results_job = dg.define_asset_job(
        results_job_name(spec),
        selection=dg.AssetSelection.assets(results_key(spec)),
        description=f"Collects one finished partition of pipeline {spec.name!r}.",
        # A results run that fails on purpose (job still running) must not be retried as a whole run.
        tags={"dagster/retry_on_asset_or_op_failure": "false"},
    )
    submission = (
        build_auto_submission_asset(spec, partitions_def)
        if spec.mode == "auto"
        else build_submission_asset(spec, partitions_def)
    )
    return dg.Definitions(
        assets=[
            build_input_asset(spec, partitions_def),
            submission,
            build_results_asset(spec, partitions_def),
        ],
        jobs=[submit_job, results_job],
        sensors=[build_completion_sensor(spec, results_job, results_key(spec))],
        schedules=[build_nightly_schedule(spec, submit_job, partitions_def)],
        resources=resources,
    )


def _realtime_defs(
    spec: PipelineSpec, partitions_def: dg.PartitionsDefinition, resources: dict[str, Any] | None
) -> dg.Definitions:
    """Input and results assets: one run reads, answers and writes a partition, so there is no sensor."""
    run_job = dg.define_asset_job(
        submit_job_name(spec),
        selection=dg.AssetSelection.assets(input_key(spec), results_key(spec)),
        description=f"Reads one partition of pipeline {spec.name!r} and answers it through the realtime API.",
    )
    return dg.Definitions(
        assets=[build_input_asset(spec, partitions_def), build_realtime_results_asset(spec, partitions_def)],
        jobs=[run_job],
        schedules=[build_nightly_schedule(spec, run_job, partitions_def)],
        resources=resources,
    )


def _bound(
    batch_engine: BatchEngineResource | None, rate_limiter: RateLimiterResource | None
) -> dict[str, Any] | None:
    resources: dict[str, Any] = {}
    if batch_engine is not None:
        resources["batch_engine"] = batch_engine
    if rate_limiter is not None:
        resources["rate_limiter"] = rate_limiter
    return resources or None
