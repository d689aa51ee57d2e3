"""The partitioned input asset: one partition of the source, validated, as normalised Parquet."""

import dagster as dg

from batch_pipelines.components.policies import STEP_RETRY_POLICY, failure_for_good
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.pipeline.source import SourceError, read_partition
from batch_pipelines.pipeline.spec import PipelineSpec


def input_key(spec: PipelineSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "input"])


def build_input_asset(spec: PipelineSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=input_key(spec),
        partitions_def=partitions_def,
        group_name=spec.name,
        kinds={"polars", "parquet"},
        owners=spec.owners,
        retry_policy=STEP_RETRY_POLICY,
        description=f"Rows of pipeline {spec.name!r} for one partition; bad rows go to the rejects table.",
    )
    def input_rows(
        context: dg.AssetExecutionContext, batch_engine: BatchEngineResource
    ) -> dg.MaterializeResult:
        layout = batch_engine.layout(spec)
        partition_key = context.partition_key
        try:
            rows = read_partition(spec, partition_key, layout.workdir)
        except SourceError as error:
            raise failure_for_good(error) from None
        input_path = layout.write_partition(rows.accepted, "inputs", spec.name, partition_key)
        rejects_path = layout.write_partition(rows.rejects, "rejects", spec.name, partition_key)
        if rows.rejects.height:
            context.log.warning(f"{rows.rejects.height} row(s) rejected; see {rejects_path}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows.accepted.height,
                "rejected_rows": rows.rejects.height,
                "path": dg.MetadataValue.path(input_path),
                "rejects_path": dg.MetadataValue.path(rejects_path),
            }
        )

    return input_rows
