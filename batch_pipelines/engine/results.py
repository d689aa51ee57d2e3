"""Turning a provider's parsed result line into the engine's BatchResult: schema check and cost."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from batch_pipelines.engine.models import BatchResult
from batch_pipelines.engine.pricing import ModelPrice


def check_response_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError with the reason when ``schema`` is not a valid JSON schema."""
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as error:
        raise ValueError(f"response_schema is not a valid JSON schema: {error.message}") from None


class ResultFinisher:
    """Completes raw results of one provider batch (attempt, batch id, cost, structured output)."""

    def __init__(
        self,
        *,
        price: ModelPrice | None,
        response_schema: dict[str, Any] | None,
        attempt: int,
        provider_batch_id: str | None,
    ) -> None:
        self.price = price
        # USD per token at the batch price, computed once: this runs for every result line.
        self._input_rate = price.input_per_million * price.batch_discount / 1e6 if price else 0.0
        self._output_rate = price.output_per_million * price.batch_discount / 1e6 if price else 0.0
        self._cache_read_rate = self._input_rate * price.cache_read_multiplier if price else 0.0
        self._cache_write_rate = self._input_rate * price.cache_write_multiplier if price else 0.0
        self.attempt = attempt
        self.provider_batch_id = provider_batch_id
        self._validator = (
            validator_for(response_schema, default=Draft202012Validator)(response_schema)
            if response_schema is not None
            else None
        )

    def finish(self, result: BatchResult) -> BatchResult:
        """Complete a result parsed by the provider, in place: attempt, batch id, cost, structured output."""
        result.attempt = self.attempt
        result.provider_batch_id = self.provider_batch_id
        if self.price is not None and (result.input_tokens or result.output_tokens):
            cached, written = result.cached_input_tokens, result.cache_write_input_tokens
            result.cost_usd = (
                (result.input_tokens - cached - written) * self._input_rate
                + cached * self._cache_read_rate
                + written * self._cache_write_rate
                + result.output_tokens * self._output_rate
            )
        if self._validator is not None and result.error is None:
            self._parse_structured(result)
        return result

    def _parse_structured(self, result: BatchResult) -> None:
        assert self._validator is not None
        try:
            parsed = json.loads(_strip_code_fence(result.response or ""))
        except ValueError as error:
            result.error = f"response is not valid JSON: {error}"
            result.error_type = "schema_validation"
            return
        problem = next(iter(self._validator.iter_errors(parsed)), None)
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
            result.error = f"response does not match the schema at {where}: {problem.message}"
            result.error_type = "schema_validation"
            return
        result.parsed = parsed


def _strip_code_fence(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped
