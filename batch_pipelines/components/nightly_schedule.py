"""The nightly off-peak schedule: one submission run per partition that needs work.

A partition needs work when it is yesterday's (daily pipelines) or any key (static pipelines), when its
results were produced under another spec version (prompt, model or parameters changed), or when it has
dead letters from transient failures that ran out of attempts.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from batch_pipelines.components.policies import partition_tags
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.pipeline.requests import spec_version
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.layout import StorageLayout


def partitions_with(
    layout: StorageLayout, table: str, pipeline: str, predicate: pl.Expr, columns: list[str]
) -> set[str]:
    keys = set()
    for key in layout.partition_keys(table, pipeline):
        try:
            frame = layout.read_partition(table, pipeline, key, columns=columns)
        except (OSError, pl.exceptions.PolarsError):
            continue
        if frame.height and frame.select(predicate.any()).item():
            keys.add(key)
    return keys


def nightly_partition_keys(
    spec: PipelineSpec, layout: StorageLayout, partitions_def: dg.PartitionsDefinition, now: datetime
) -> list[str]:
    valid = set(partitions_def.get_partition_keys(current_time=now))
    wanted: set[str] = set()
    if spec.partitions.daily is not None:
        local_today = now.astimezone(ZoneInfo(spec.partitions.daily.timezone)).date()
        wanted.add((local_today - timedelta(days=1)).isoformat())
    else:
        wanted.update(valid)
    outdated = pl.col("spec_version") != spec_version(spec)
    wanted |= partitions_with(layout, "results", spec.name, outdated, ["spec_version"])
    wanted |= partitions_with(layout, "dead_letters", spec.name, pl.col("transient"), ["transient"])
    return sorted(wanted & valid)


def build_nightly_schedule(
    spec: PipelineSpec, submit_job: UnresolvedAssetJobDefinition, partitions_def: dg.PartitionsDefinition
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{spec.name}_nightly",
        job=submit_job,
        cron_schedule=spec.schedule.cron,
        execution_timezone=spec.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if spec.schedule.enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Off-peak submission for pipeline {spec.name!r}: yesterday's partition, partitions whose "
            "request shape changed, and partitions with resubmittable failures."
        ),
    )
    def nightly(
        context: dg.ScheduleEvaluationContext, batch_engine: BatchEngineResource
    ) -> list[dg.RunRequest]:
        now = context.scheduled_execution_time
        keys = nightly_partition_keys(spec, batch_engine.layout(spec), partitions_def, now)
        return [
            dg.RunRequest(
                run_key=f"{now.isoformat()}:{key}",
                partition_key=key,
                tags=partition_tags(spec.name, key),
            )
            for key in keys
        ]

    return nightly
