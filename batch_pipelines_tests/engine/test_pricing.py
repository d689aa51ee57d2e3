import pytest

from batch_pipelines.engine.pricing import ModelPrice, job_cost, price_for


def test_batch_costs_half_of_realtime() -> None:
    price = ModelPrice(input_per_million=0.15, output_per_million=0.60)
    assert price.cost(1_000_000, 1_000_000, batch=False) == pytest.approx(0.75)
    assert price.cost(1_000_000, 1_000_000) == pytest.approx(0.375)


def test_dated_snapshot_uses_base_model_price() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")
    assert price_for("some-local-model") is None


def test_job_cost_reports_savings() -> None:
    cost = job_cost(ModelPrice(2.0, 8.0), 0.5, input_tokens=500_000, output_tokens=100_000)
    assert cost.realtime_usd == pytest.approx(1.8)
    assert cost.actual_usd == pytest.approx(0.9)
    assert cost.saved_usd == pytest.approx(0.9)
    assert cost.estimated_usd == 0.5
    assert job_cost(None, None, 10, 10).actual_usd is None


@pytest.mark.parametrize(
    ("bedrock_id", "family"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("global.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
    ],
)
def test_bedrock_model_ids_are_priced_as_their_family(bedrock_id: str, family: str) -> None:
    assert price_for(bedrock_id) is not None and price_for(bedrock_id) == price_for(family)
    assert price_for("anthropic.claude-unknown-v1:0") is None
