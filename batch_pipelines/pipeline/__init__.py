"""The declarative pipeline spec and its validation (no Dagster here)."""

from batch_pipelines.pipeline.requests import render_messages, request_hash, spec_version
from batch_pipelines.pipeline.spec import PipelineSpec, PipelineSpecError, parse_pipeline_spec

__all__ = [
    "PipelineSpec",
    "PipelineSpecError",
    "parse_pipeline_spec",
    "render_messages",
    "request_hash",
    "spec_version",
]
