"""The partitioned input asset: one partition of the source, validated, as normalised Parquet.

The rows go from the source to the inputs and rejects files a batch at a time, never held whole."""

import dagster as dg

from batch_pipelines.components.policies import STEP_RETRY_POLICY, failure_for_good
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.pipeline.source import SourceError, split_partition
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
            with (
                layout.partition_writer("inputs", spec.name, partition_key) as inputs,
                layout.partition_writer("rejects", spec.name, partition_key) as rejects,
            ):
                for batch in split_partition(spec, partition_key, layout.workdir):
                    inputs.write(batch.accepted)
                    rejects.write(batch.rejects)
        except SourceError as error:
            raise failure_for_good(error) from None
        accepted, rejected = inputs.rows, rejects.rows
        input_path, rejects_path = inputs.location, rejects.location
        if rejected:
            context.log.warning(f"{rejected} row(s) rejected; see {rejects_path}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": accepted,
                "rejected_rows": rejected,
                "path": dg.MetadataValue.path(input_path),
                "rejects_path": dg.MetadataValue.path(rejects_path),
            }
        )

    return input_rows
