import pytest

from batch_pipelines.engine.models import BatchResult
from batch_pipelines.engine.pricing import ModelPrice
from batch_pipelines.engine.results import ResultFinisher, check_response_schema

SCHEMA = {"type": "object", "properties": {"label": {"enum": ["bug", "billing"]}}, "required": ["label"]}


def _finish(response: str, schema: dict[str, object] | None = SCHEMA) -> BatchResult:
    finisher = ResultFinisher(
        price=ModelPrice(1.0, 2.0), response_schema=schema, attempt=2, provider_batch_id="batch_9"
    )
    return finisher.finish(BatchResult("r1", response=response, input_tokens=1000, output_tokens=500))


def test_valid_structured_output_is_parsed_and_priced() -> None:
    result = _finish('```json\n{"label": "bug"}\n```')
    assert result.ok and result.parsed == {"label": "bug"}
    assert (result.attempt, result.provider_batch_id) == (2, "batch_9")
    assert result.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6 * 0.5)


def test_output_outside_the_schema_is_that_requests_error() -> None:
    result = _finish('{"label": "weather"}')
    assert result.error_type == "schema_validation" and not result.retryable
    assert result.error is not None and "label" in result.error and result.response == '{"label": "weather"}'


def test_output_that_is_not_json_is_that_requests_error() -> None:
    result = _finish("I think it is a bug.")
    assert result.error_type == "schema_validation" and "not valid JSON" in (result.error or "")


def test_invalid_schema_is_refused_before_submit() -> None:
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        check_response_schema({"type": 5})
