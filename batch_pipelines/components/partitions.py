"""The Dagster partitions definition a spec declares."""

from __future__ import annotations

import dagster as dg

from batch_pipelines.pipeline.spec import PipelineSpec


def partitions_for(spec: PipelineSpec) -> dg.PartitionsDefinition:
    daily = spec.partitions.daily
    if daily is not None:
        return dg.DailyPartitionsDefinition(
            start_date=daily.start_date.isoformat(),
            end_date=daily.end_date.isoformat() if daily.end_date else None,
            timezone=daily.timezone,
        )
    assert spec.partitions.static is not None
    return dg.StaticPartitionsDefinition(list(spec.partitions.static.keys))
