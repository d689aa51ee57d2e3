"""Column sets of the tables a pipeline writes, and typed columns parsed from a response schema."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "pipeline": pl.String(),
    "partition_key": pl.String(),
    "id": pl.String(),
    "response": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),
    "attempt": pl.Int64(),
    "provider_batch_id": pl.String(),
    "job_id": pl.String(),
    "request_hash": pl.String(),
    "spec_version": pl.String(),
    "path": pl.String(),  # which path answered the row: one of RESULT_PATHS
    # Of input_tokens: read from the provider's prompt cache, and written to it (Anthropic cache writes).
    "cached_input_tokens": pl.Int64(),
    "cache_write_input_tokens": pl.Int64(),
}

# `batch`: a provider batch job; `realtime`: a synchronous call of its own; `packed`: a share of a call
# answering several items; `local`: the local provider's batches; `imported`: `batch-pipelines import`.
RESULT_PATHS = ("batch", "realtime", "packed", "local", "imported")

DEAD_LETTERS_SCHEMA: dict[str, pl.DataType] = {
    "pipeline": pl.String(),
    "partition_key": pl.String(),
    "id": pl.String(),
    "error_type": pl.String(),
    "error_message": pl.String(),
    "transient": pl.Boolean(),
    "attempt": pl.Int64(),
    "job_id": pl.String(),
    "request_hash": pl.String(),
}

REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "pipeline": pl.String(),
    "partition_key": pl.String(),
    "row_number": pl.Int64(),
    "id": pl.String(),
    "reason": pl.String(),
}

_JSON_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "number": pl.Float64(),
    "boolean": pl.Boolean(),
}


def parsed_columns(response_schema: dict[str, Any] | None) -> dict[str, pl.DataType]:
    """Typed columns for the top-level properties of an object schema; nested values stay JSON text.

    A property whose name clashes with a results column is prefixed with `response_`.
    """
    if not response_schema or response_schema.get("type") != "object":
        return {}
    columns: dict[str, pl.DataType] = {}
    for name, definition in (response_schema.get("properties") or {}).items():
        declared = definition.get("type") if isinstance(definition, dict) else None
        dtype = _JSON_TYPES.get(declared, pl.String()) if isinstance(declared, str) else pl.String()
        column = f"response_{name}" if name in RESULTS_SCHEMA else name
        columns[column] = dtype
    return columns


def parse_response_fields(response: str | None, response_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The typed values of one response; missing or unparsable values become None."""
    if not response_schema:
        return {}
    columns = parsed_columns(response_schema)
    values: dict[str, Any] = dict.fromkeys(columns)
    if not columns or response is None:
        return values
    try:
        document = json.loads(response)
    except json.JSONDecodeError:
        return values
    if not isinstance(document, dict):
        return values
    for name in (response_schema or {}).get("properties", {}):
        column = f"response_{name}" if name in RESULTS_SCHEMA else name
        value = document.get(name)
        dtype = columns[column]
        if value is not None and dtype == pl.String() and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True)
        values[column] = _coerce(value, dtype)
    return values


def _coerce(value: Any, dtype: pl.DataType) -> Any:
    if value is None:
        return None
    checks: dict[Any, tuple[type, ...]] = {
        pl.Int64(): (int,),
        pl.Float64(): (int, float),
        pl.Boolean(): (bool,),
        pl.String(): (str,),
    }
    allowed = checks.get(dtype, (object,))
    if isinstance(value, bool) and dtype != pl.Boolean():
        return None
    return value if isinstance(value, allowed) else None
