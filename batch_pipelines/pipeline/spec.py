"""What a user declares about a pipeline, and the checks that make a bad declaration fail early.

A spec is plain data (pydantic, no Dagster): the Dagster component, the Python factory and the CLI all
build one and get the same validation. Every error names the field it is about.
"""

from __future__ import annotations

import re
import string
from datetime import date
from functools import cached_property
from pathlib import PurePath
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batch_pipelines.pipeline.cron import validate_cron
from batch_pipelines.pipeline.partition_keys import check_partition_key

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
FILE_FORMATS = ("parquet", "csv", "jsonl")
PROVIDERS = ("openai", "anthropic", "bedrock", "local")
MODES = ("batch", "realtime", "auto")
REALTIME_PROVIDERS = ("openai", "anthropic")
OWNER_PATTERN = r"team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+"
DEFAULT_CRON = "0 3 * * *"  # 03:00, off-peak for most providers and most teams


class PipelineSpecError(ValueError):
    """A pipeline declaration that cannot run; the message names the pipeline and the field."""


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_SpecModel):
    """Where rows come from: a glob of files, or a DuckDB SQL query (exactly one)."""

    path: str | None = Field(default=None, description="Glob of Parquet, CSV or JSONL files.")
    format: Literal["parquet", "csv", "jsonl"] | None = Field(
        default=None, description="File format; inferred from the glob's suffix when left out."
    )
    sql: str | None = Field(default=None, description="A DuckDB query returning the rows.")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.path is None) == (self.sql is None):
            raise ValueError("give exactly one of 'path' (a file glob) or 'sql' (a DuckDB query)")
        if self.sql is not None and self.format is not None:
            raise ValueError("'format' applies to 'path' sources only")
        if self.path is not None and self.file_format is None:
            raise ValueError(
                f"cannot tell the format of {self.path!r} from its suffix; set 'format' to one of "
                f"{', '.join(FILE_FORMATS)}"
            )
        return self

    @property
    def file_format(self) -> str | None:
        if self.format is not None:
            return self.format
        if self.path is None:
            return None
        suffix = self.path.rsplit(".", 1)[-1].lower()
        return {"parquet": "parquet", "pq": "parquet", "csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(
            suffix
        )


class DailyPartitioning(_SpecModel):
    """One partition per calendar day of a timestamp column."""

    column: str = Field(description="Timestamp or date column that places a row in its day.")
    start_date: date = Field(description="First partition (YYYY-MM-DD).")
    end_date: date | None = Field(default=None, description="Exclusive; open-ended when left out.")
    timezone: str = Field(default="UTC", description="IANA timezone the days are cut in.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _ordered(self) -> DailyPartitioning:
        if self.end_date is not None and self.end_date <= self.start_date:
            raise ValueError("'end_date' must come after 'start_date'")
        return self


class StaticPartitioning(_SpecModel):
    """One partition per listed value of a column."""

    column: str = Field(description="Column whose value names a row's partition.")
    keys: list[str] = Field(min_length=1, description="The partition keys, distinct and path-safe.")

    @field_validator("keys")
    @classmethod
    def _distinct_safe_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            check_partition_key(key)
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"duplicate keys: {', '.join(duplicates)}")
        return keys


class PartitionsSpec(_SpecModel):
    """How rows split into partitions: exactly one of `daily` or `static`."""

    daily: DailyPartitioning | None = Field(default=None, description="Daily partitions by a timestamp.")
    static: StaticPartitioning | None = Field(default=None, description="Partitions by a column's values.")

    @model_validator(mode="after")
    def _one_kind(self) -> PartitionsSpec:
        if (self.daily is None) == (self.static is None):
            raise ValueError("give exactly one of 'daily' or 'static'")
        return self

    @property
    def column(self) -> str:
        chosen = self.daily or self.static
        assert chosen is not None
        return chosen.column


class PromptSpec(_SpecModel):
    """Templates over the row's columns: `{column}` inserts a value, `{{` and `}}` are literal braces."""

    system: str | None = Field(default=None, description="System prompt template.")
    user: str = Field(description="User message template.")

    @field_validator("system", "user")
    @classmethod
    def _well_formed(cls, template: str | None) -> str | None:
        if template is not None:
            template_columns(template)
        return template

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Read once per row when rendering, so parsed once per spec."""
        found: list[str] = []
        for template in (self.system, self.user):
            if template is not None:
                found.extend(name for name in template_columns(template) if name not in found)
        return tuple(found)


class ScheduleSpec(_SpecModel):
    """When the nightly schedule submits: yesterday's partition, changed ones and retryable failures."""

    cron: str = Field(default=DEFAULT_CRON, description="Cron expression (default: 03:00, off-peak).")
    timezone: str = Field(default="UTC", description="IANA timezone of the cron expression.")
    enabled: bool = Field(default=True, description="Set false to declare the schedule stopped.")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        validate_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)


class RealtimeSpec(_SpecModel):
    """How `mode: realtime` and the urgent half of `mode: auto` call the provider's synchronous API."""

    requests_per_minute: int | None = Field(
        default=None,
        gt=0,
        description="Requests per minute for this provider+model, shared by every run through the rate "
        "limiter; unset: the `rate_limiter` resource's limit (which takes an EnvVar).",
    )
    tokens_per_minute: int | None = Field(
        default=None,
        gt=0,
        description="Tokens per minute, like `requests_per_minute`; unset: the `rate_limiter` resource's.",
    )
    concurrency: int = Field(default=16, ge=1, le=1024, description="Calls in flight per partition run.")
    items_per_prompt: int | None = Field(
        default=None,
        ge=2,
        le=100,
        description="Pack up to this many items into one prompt when they fit the context window; answers "
        "that cannot be parsed back fall back to one call per item. Unset: one call per item.",
    )
    priority_column: str | None = Field(
        default=None,
        description="Integer column ordering the work queue (higher first), and the calls waiting for the "
        "provider's rate-limit budget; unset: input order.",
    )
    max_deliveries: int = Field(
        default=3, ge=1, le=10, description="Deliveries of an item before it goes to the dead letters."
    )


class UrgentSpec(_SpecModel):
    """Which items `mode: auto` answers realtime now; the rest go through the batch path."""

    priority_column: str = Field(description="Integer column holding an item's priority.")
    threshold: int = Field(description="Items whose priority is at least this are urgent.")


class WorkersSpec(_SpecModel):
    """A pool of realtime worker runs draining one work queue, launched by a sensor as the queue fills."""

    queue: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,70}$",
        description="Name of the work queue the workers drain (items enqueued by your producers).",
    )
    backend: Literal["sqlite", "sqs"] = Field(
        default="sqlite",
        description="`sqlite` (the embedded queue, in the BatchStore's database or the working folder) or "
        "`sqs` (an SQS queue of that name plus `<queue>-dead`, found through boto3's AWS configuration; "
        "results in the BatchStore's database).",
    )
    max_workers: int = Field(
        default=4, ge=1, le=1000, description="Worker runs at most, counting queued and running ones."
    )
    items_per_worker: int = Field(
        default=1000, ge=1, description="Queued items per worker run the sensor asks for."
    )
    concurrency: int = Field(default=16, ge=1, le=1024, description="Calls in flight per worker run.")
    visibility_timeout_s: float = Field(
        default=300.0, gt=0, description="How long a received item stays leased to its worker."
    )
    sensor_interval_seconds: int = Field(
        default=30, ge=1, le=3600, description="Least time between two scaling-sensor ticks."
    )


class PipelineSpec(_SpecModel):
    """A whole pipeline: rows in, one model request per row, results out as Parquet."""

    name: str = Field(pattern=NAME_PATTERN, description="Lower-case identifier; names the assets.")
    source: SourceSpec = Field(description="Where the rows come from.")
    partitions: PartitionsSpec = Field(description="How rows split into partitions.")
    id_column: str = Field(description="Column identifying a row: non-null and unique.")
    prompt: PromptSpec = Field(description="The request rendered for each row.")
    provider: str = Field(
        description="Provider API, e.g. `openai` (also any OpenAI-compatible server), `anthropic`, or "
        "`local` (a sentence-transformers model on this machine, `kind: embedding`); an unknown name is "
        "refused with the list of known ones."
    )
    model: str = Field(min_length=1, description="The provider's model name, e.g. gpt-4o-mini.")
    kind: Literal["chat", "embedding"] = Field(
        default="chat",
        description="`chat` (one completion per row) or `embedding` (the rendered `user` template).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the model, e.g. max_tokens; renamed or refused per model family, see "
        "[Model parameters by family](#model-parameters-by-family).",
    )
    mode: str = Field(
        default="batch",
        description="`batch` (provider batch API, collected by the completion sensor), `realtime` (the "
        "synchronous API through the shared rate limiter; the partition's results are written at once) or "
        "`auto` (items matching `urgent` realtime, the rest batch, into the same results).",
    )
    realtime: RealtimeSpec = Field(
        default_factory=RealtimeSpec, description="Limits, concurrency and packing of realtime calls."
    )
    urgent: UrgentSpec | None = Field(
        default=None, validate_default=True, description="Required with `mode: auto`: which items are urgent."
    )
    workers: WorkersSpec | None = Field(
        default=None,
        description="A worker pool scaled by queue depth: a worker job and its scaling sensor (realtime "
        "providers only; items per call and deliveries follow `realtime`). Unset: none.",
    )
    response_schema: dict[str, Any] | None = Field(default=None, description="JSON schema for responses.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="The nightly schedule.")
    results_root: str | None = Field(
        default=None,
        description="Folder for result Parquet: relative to the working folder and inside it, or an "
        "absolute path for a folder elsewhere. Default: results",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Submissions per item for transient errors."
    )
    sensor_interval_seconds: int = Field(
        default=60, ge=1, le=3600, description="Least time between two completion-sensor ticks."
    )
    results_wait_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description=(
            "How long a results step that meets a job still running waits for it to end (polling and "
            "reporting progress) before it ends without materializing and leaves the job to the "
            "completion sensor. Covers a run of the whole graph (backfill, Materialize all)."
        ),
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Budget in USD: a submission whose worst-case cost (every answer at `max_tokens`) would take "
            "spend past it is refused before anything is uploaded. Unset: no limit."
        ),
    )
    max_cost_per: Literal["run", "day"] = Field(
        default="run",
        description=(
            "What `max_cost_usd` bounds: each partition's submission (`run`) or everything the pipeline "
            "submits in a UTC day (`day`, counting the worst cases of that day's earlier jobs, or their "
            "bills where higher)."
        ),
    )
    dead_letter_threshold: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of a partition's items in the dead-letter table above which its check fails.",
    )
    owners: list[str] = Field(
        default_factory=list,
        description="Asset owners shown in the Dagster UI: e-mail addresses or `team:<name>`.",
    )

    @field_validator("results_root")
    @classmethod
    def _results_root_inside(cls, value: str | None) -> str | None:
        """A relative root that climbs out of the working folder (`../../x`) is almost always a mistake
        that scatters results where nothing looks for them; a folder elsewhere is named absolutely."""
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must name a folder (leave it out for the default, 'results')")
        root = PurePath(value)
        if not root.is_absolute() and ".." in root.parts:
            raise ValueError(
                f"{value!r} leaves the working folder; give a folder inside it (e.g. 'results/tickets') "
                "or an absolute path"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; choose one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("owners")
    @classmethod
    def _owner_format(cls, owners: list[str]) -> list[str]:
        for owner in owners:
            if not re.fullmatch(OWNER_PATTERN, owner):
                raise ValueError(f"owner {owner!r}: write an e-mail address or 'team:<name>'")
        return owners

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str, info: ValidationInfo) -> str:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; choose one of {', '.join(MODES)}")
        provider = info.data.get("provider")
        if value != "batch" and provider is not None and provider not in REALTIME_PROVIDERS:
            raise ValueError(
                f"'mode: {value}' needs a provider with a realtime API ({', '.join(REALTIME_PROVIDERS)}), "
                f"not {provider!r}"
            )
        return value

    @field_validator("workers")
    @classmethod
    def _workers_need_realtime(cls, value: WorkersSpec | None, info: ValidationInfo) -> WorkersSpec | None:
        provider = info.data.get("provider")
        if value is not None and provider is not None and provider not in REALTIME_PROVIDERS:
            raise ValueError(
                f"workers call the realtime API ({', '.join(REALTIME_PROVIDERS)}), not {provider!r}'s"
            )
        return value

    @field_validator("urgent")
    @classmethod
    def _urgent_with_auto(cls, value: UrgentSpec | None, info: ValidationInfo) -> UrgentSpec | None:
        mode = info.data.get("mode")
        if mode == "auto" and value is None:
            raise ValueError("'mode: auto' needs 'urgent' (priority_column and threshold)")
        if mode is not None and mode != "auto" and value is not None:
            raise ValueError("'urgent' applies to 'mode: auto' only")
        return value

    @field_validator("response_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(value)
            except jsonschema.SchemaError as error:
                raise ValueError(f"not a valid JSON schema: {error.message}") from None
        return value

    @model_validator(mode="after")
    def _columns_distinct(self) -> PipelineSpec:
        if self.id_column == self.partitions.column:
            raise ValueError("'id_column' and the partition column must differ")
        if self.kind == "embedding" and (self.prompt.system is not None or self.response_schema is not None):
            raise ValueError(
                "an embedding pipeline embeds 'prompt.user' alone: drop 'prompt.system' and 'response_schema'"
            )
        if self.provider == "local" and self.kind != "embedding":
            raise ValueError("provider 'local' runs sentence-transformers models: set 'kind: embedding'")
        return self

    @model_validator(mode="after")
    def _priority_columns_distinct(self) -> PipelineSpec:
        for field, column in (
            ("realtime.priority_column", self.realtime.priority_column),
            ("urgent.priority_column", self.urgent.priority_column if self.urgent else None),
        ):
            if column in (self.id_column, self.partitions.column):
                raise ValueError(f"'{field}' must differ from 'id_column' and the partition column")
        return self


def template_columns(template: str) -> tuple[str, ...]:
    """The column names a template refers to, or a ValueError describing the first bad placeholder."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"malformed template ({error}); write literal braces as '{{{{' and '}}}}'") from None
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field_name):
            raise ValueError(f"placeholder {{{field_name}}} must be a plain column name")
        if format_spec or conversion:
            raise ValueError(f"placeholder {{{field_name}}} takes no format spec or conversion")
        if field_name not in names:
            names.append(field_name)
    return tuple(names)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}") from None
    return value


def parse_pipeline_spec(data: Any, *, origin: str | None = None) -> PipelineSpec:
    """Validate a declaration (a mapping, e.g. parsed YAML) into a spec, or raise PipelineSpecError."""
    if isinstance(data, PipelineSpec):
        return data
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as error:
        raise PipelineSpecError(describe_validation_error(error, data, origin)) from None


def describe_validation_error(error: ValidationError, data: Any, origin: str | None) -> str:
    name = data.get("name") if isinstance(data, dict) else None
    subject = f"pipeline {name!r}" if isinstance(name, str) else "pipeline"
    if origin:
        subject += f" (declared in {origin})"
    lines = [f"invalid {subject}:"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"  field '{field}': {message}")
    return "\n".join(lines)
