"""The cost figures of a job; prices per model live in :mod:`batch_pipelines.wire.pricing`."""

from __future__ import annotations

from batch_pipelines.engine.models import JobCost
from batch_pipelines.wire.pricing import (
    BATCH_DISCOUNT,
    DEFAULT_OUTPUT_TOKENS,
    PRICES,
    ModelPrice,
    price_for,
)

__all__ = ["BATCH_DISCOUNT", "DEFAULT_OUTPUT_TOKENS", "PRICES", "ModelPrice", "job_cost", "price_for"]


def job_cost(
    price: ModelPrice | None,
    estimated_usd: float | None,
    input_tokens: int,
    output_tokens: int,
    *,
    cached_input_tokens: int = 0,
    cache_write_input_tokens: int = 0,
) -> JobCost:
    """The cost figures of a job from its reported usage so far (cache reads and writes at their rates)."""
    cached, written = cached_input_tokens, cache_write_input_tokens
    if price is None:
        return JobCost(
            estimated_usd,
            None,
            None,
            None,
            input_tokens,
            output_tokens,
            cached_input_tokens=cached,
            cache_write_input_tokens=written,
        )
    actual = price.cost(
        input_tokens, output_tokens, batch=True, cached_input_tokens=cached, cache_write_input_tokens=written
    )
    realtime = price.cost(
        input_tokens, output_tokens, batch=False, cached_input_tokens=cached, cache_write_input_tokens=written
    )
    uncached = price.cost(input_tokens, output_tokens, batch=True)
    return JobCost(
        estimated_usd,
        actual,
        realtime,
        realtime - actual,
        input_tokens,
        output_tokens,
        cached_input_tokens=cached,
        cache_write_input_tokens=written,
        cache_saved_usd=uncached - actual,
    )
