"""batch_pipelines: large language-model workloads in batch, as a Dagster code location."""
