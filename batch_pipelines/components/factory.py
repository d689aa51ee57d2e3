"""`build_pipeline_defs(spec)`: everything one declared pipeline becomes in Dagster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from batch_pipelines.components.completion_sensor import build_completion_sensor
from batch_pipelines.components.input_asset import build_input_asset, input_key
from batch_pipelines.components.nightly_schedule import build_nightly_schedule
from batch_pipelines.components.partitions import partitions_for
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.results_asset import build_results_asset, results_key
from batch_pipelines.components.submission_asset import build_submission_asset, submission_key
from batch_pipelines.pipeline.spec import PipelineSpec, parse_pipeline_spec


def submit_job_name(spec: PipelineSpec) -> str:
    return f"{spec.name}_submit_job"


def results_job_name(spec: PipelineSpec) -> str:
    return f"{spec.name}_results_job"


def build_pipeline_defs(
    spec: PipelineSpec | Mapping[str, Any], *, batch_engine: BatchEngineResource | None = None
) -> dg.Definitions:
    """The assets, jobs, sensor and schedule of one pipeline.

    `spec` is a PipelineSpec or a mapping (e.g. parsed YAML); a bad one raises PipelineSpecError naming the
    field. Pass `batch_engine` to bind the resource here; otherwise the code location provides it.
    """
    spec = parse_pipeline_spec(spec)
    partitions_def = partitions_for(spec)
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
    return dg.Definitions(
        assets=[
            build_input_asset(spec, partitions_def),
            build_submission_asset(spec, partitions_def),
            build_results_asset(spec, partitions_def),
        ],
        jobs=[submit_job, results_job],
        sensors=[build_completion_sensor(spec, results_job, results_key(spec))],
        schedules=[build_nightly_schedule(spec, submit_job, partitions_def)],
        resources={"batch_engine": batch_engine} if batch_engine is not None else None,
    )
