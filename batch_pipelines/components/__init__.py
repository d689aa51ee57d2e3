"""The Dagster layer's building blocks: the pipeline component, its Python factory and resources."""

from batch_pipelines.components.factory import build_pipeline_defs
from batch_pipelines.components.pipeline_component import BatchPipelineComponent
from batch_pipelines.components.resources import BatchEngineResource, DuckDBResource, key_from_environment

__all__ = [
    "BatchEngineResource",
    "BatchPipelineComponent",
    "DuckDBResource",
    "build_pipeline_defs",
    "key_from_environment",
]
