"""`BatchPipelineComponent`: a pipeline declared in YAML under `defs/`, the same spec the factory takes.

type: batch_pipelines.components.BatchPipelineComponent
attributes:
  name: support_tickets
  source: {path: "demo/tickets/*.parquet"}
  partitions: {daily: {column: created_at, start_date: "2026-11-01"}}
  id_column: ticket_id
  prompt: {system: "You triage support tickets.", user: "{subject}\n\n{body}"}
  provider: openai
  model: gpt-4o-mini
"""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg
from pydantic import Field

from batch_pipelines.components.factory import build_pipeline_defs
from batch_pipelines.pipeline.source_columns import missing_columns_problem
from batch_pipelines.pipeline.spec import DEFAULT_CRON, PipelineSpec, PipelineSpecError, parse_pipeline_spec
from batch_pipelines.workdir import WorkdirError, resolve_workdir

# The YAML field `model` (the provider's model name) shadows the classmethod `Resolvable.model()` only on
# instances; Dagster calls it on the class, where pydantic leaves it intact. Silence pydantic's warning.
warnings.filterwarnings(
    "ignore", message='Field name "model" in "BatchPipelineComponent"', category=UserWarning
)


class BatchPipelineComponent(dg.Component, dg.Model, dg.Resolvable):
    """Runs a language model over every row of a partitioned source through provider batch APIs.

    Becomes an input asset, a submission asset, a results asset with checks, a completion sensor and a
    nightly schedule. Relative source paths and `results_root` resolve against the working folder.
    """

    name: str = Field(description="Lower-case identifier; the asset key prefix and group.")
    source: dict[str, Any] = Field(description="`path` (a Parquet/CSV/JSONL glob) or `sql` (a DuckDB query).")
    partitions: dict[str, Any] = Field(
        description="`daily: {column, start_date, end_date?, timezone?}` or `static: {column, keys}`."
    )
    id_column: str = Field(description="Column that identifies a row; must be non-null and unique.")
    prompt: dict[str, Any] = Field(description="`system` and `user` templates; `{column}` inserts a value.")
    provider: str = Field(description="`openai`, `anthropic` or `local` (sentence-transformers).")
    model: str  # type: ignore[assignment]
    kind: str = Field(default="chat", description="`chat`, or `embedding` (embeds the `user` template).")
    params: dict[str, Any] = Field(default_factory=dict, description="Model parameters, e.g. max_tokens.")
    mode: str = Field(
        default="batch",
        description="`batch`, `realtime` (synchronous API, rate-limited) or `auto` (see `urgent`).",
    )
    realtime: dict[str, Any] | None = Field(
        default=None,
        description="`requests_per_minute`, `tokens_per_minute`, `concurrency`, `items_per_prompt`, "
        "`priority_column`, `max_deliveries` for realtime calls.",
    )
    urgent: dict[str, Any] | None = Field(
        default=None,
        description="`mode: auto` only: `{priority_column, threshold}` picks the realtime items.",
    )
    workers: dict[str, Any] | None = Field(
        default=None,
        description="`queue`, `backend` (`sqlite`/`sqs`), `max_workers`, `items_per_worker`, `concurrency`, "
        "`visibility_timeout_s`, `sensor_interval_seconds`: a worker job and its queue-depth sensor.",
    )
    response_schema: dict[str, Any] | None = Field(default=None, description="JSON schema of a response.")
    schedule: dict[str, Any] | None = Field(
        default=None, description=f"`cron` (default {DEFAULT_CRON!r}), `timezone`, `enabled`."
    )
    results_root: str | None = None
    max_attempts: int = 3
    sensor_interval_seconds: int = 60
    results_wait_seconds: int = Field(
        default=300,
        description="Seconds a results step waits for a running job, then leaves it to the sensor.",
    )
    max_cost_usd: float | None = Field(default=None, description="Budget in USD; see `max_cost_per`.")
    max_cost_per: str = Field(default="run", description="`run` (per submission) or `day` (UTC day).")
    dead_letter_threshold: float = Field(default=0.05, description="Dead-letter share that fails the check.")
    owners: list[str] = Field(default_factory=list, description="E-mail addresses or `team:<name>`.")

    def pipeline_spec(self, origin: str | None = None) -> PipelineSpec:
        """The validated spec; a PipelineSpecError names the field (and `origin`, the declaring file)."""
        return parse_pipeline_spec(self.model_dump(exclude_none=True), origin=origin)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec = self.pipeline_spec(origin=str(context.path))
        check_declared_columns(spec, origin=str(context.path))
        return build_pipeline_defs(spec)


def check_declared_columns(spec: PipelineSpec, origin: str) -> None:
    """Refuse a declaration naming a column its source lacks, when the source's header can be read from
    here (relative paths resolve against the working folder, as in a run)."""
    try:
        base_dir = resolve_workdir()
    except WorkdirError:
        return
    problem = missing_columns_problem(spec, base_dir)
    if problem is not None:
        raise PipelineSpecError(f"invalid pipeline {spec.name!r} (declared in {origin}):\n{problem}")
