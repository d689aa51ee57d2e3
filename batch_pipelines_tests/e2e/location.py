"""A code location for the end-to-end test: one pipeline built with the public Python factory from the
spec in $BATCH_PIPELINES_E2E_SPEC (a JSON file), wired the way a user's own location would be."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from batch_pipelines.components.factory import build_pipeline_defs
from batch_pipelines.components.resources import BatchEngineResource

defs = build_pipeline_defs(
    json.loads(Path(os.environ["BATCH_PIPELINES_E2E_SPEC"]).read_text()),
    batch_engine=BatchEngineResource(
        api_key=dg.EnvVar("BATCH_PIPELINES_API_KEY"),
        base_url=os.environ["BATCH_PIPELINES_BASE_URL"],
    ),
)
