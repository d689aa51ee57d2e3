"""Prices per model, and the cost of tokens in batch and in realtime (shared by engine and providers).

Prompt caching: tokens read from the cache cost ``cache_read_multiplier`` of the input price and tokens
written to it ``cache_write_multiplier`` (Anthropic's 5-minute cache write, 1.25x; OpenAI caches for
free). The batch discount applies to every part, as both providers bill it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BATCH_DISCOUNT = 0.5
DEFAULT_OUTPUT_TOKENS = 256  # assumed per chat request when estimating without max_tokens
# Anthropic's published cache multipliers: a read is 0.1x the input price, a 5-minute cache write 1.25x.
ANTHROPIC_CACHE_READ = 0.1
ANTHROPIC_CACHE_WRITE = 1.25


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens at the synchronous (realtime) price; batches cost ``batch_discount`` of it.

    ``cache_read_multiplier`` / ``cache_write_multiplier``: the share of the input price a token read from
    or written to the prompt cache costs (1.0: priced as plain input)."""

    input_per_million: float
    output_per_million: float
    batch_discount: float = BATCH_DISCOUNT
    cache_read_multiplier: float = 1.0
    cache_write_multiplier: float = 1.0

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        batch: bool = True,
        cached_input_tokens: int = 0,
        cache_write_input_tokens: int = 0,
    ) -> float:
        """USD for the usage; ``input_tokens`` includes the cached and cache-written ones."""
        plain = input_tokens - cached_input_tokens - cache_write_input_tokens
        input_units = (
            plain
            + cached_input_tokens * self.cache_read_multiplier
            + cache_write_input_tokens * self.cache_write_multiplier
        )
        usd = (input_units * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000
        return usd * self.batch_discount if batch else usd


def _openai(input_usd: float, output_usd: float, cached_input_usd: float | None = None) -> ModelPrice:
    """An OpenAI list price; cached input is its own published figure per model."""
    read = cached_input_usd / input_usd if cached_input_usd is not None else 1.0
    return ModelPrice(input_usd, output_usd, cache_read_multiplier=read)


def _anthropic(input_usd: float, output_usd: float) -> ModelPrice:
    return ModelPrice(
        input_usd,
        output_usd,
        cache_read_multiplier=ANTHROPIC_CACHE_READ,
        cache_write_multiplier=ANTHROPIC_CACHE_WRITE,
    )


# List prices (USD / 1M tokens: input, output, cached input). Override per provider with `prices=`.
PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "gpt-4o": _openai(2.50, 10.00, 1.25),
    "gpt-4.1": _openai(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "gpt-5": _openai(1.25, 10.00, 0.125),
    "gpt-5-mini": _openai(0.25, 2.00, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "o1": _openai(15.00, 60.00, 7.50),
    "o1-mini": _openai(1.10, 4.40, 0.55),
    "o3": _openai(2.00, 8.00, 0.50),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "o4-mini": _openai(1.10, 4.40, 0.275),
    "text-embedding-3-small": _openai(0.02, 0.0),
    "text-embedding-3-large": _openai(0.13, 0.0),
    "claude-3-5-haiku-latest": _anthropic(0.80, 4.00),
    "claude-3-5-haiku": _anthropic(0.80, 4.00),
    "claude-3-haiku-20240307": _anthropic(0.25, 1.25),
    "claude-3-haiku": _anthropic(0.25, 1.25),
    "claude-haiku-4-5": _anthropic(1.00, 5.00),
    "claude-sonnet-4-5": _anthropic(3.00, 15.00),
    "claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude-opus-4-1": _anthropic(15.00, 75.00),
}
# Bedrock model ids: an optional cross-region prefix (us., eu., apac., global.), the vendor, the model
# and a version suffix: `us.anthropic.claude-sonnet-4-5-20250929-v1:0` is priced as claude-sonnet-4-5.
_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.(?P<model>.+?)(?:-v\d+(?::\d+)?)?$")


def price_for(model: str) -> ModelPrice | None:
    """The price of a model, also for dated snapshots (``gpt-4o-mini-2024-07-18``) and Bedrock model ids
    (``anthropic.claude-3-haiku-20240307-v1:0``, region-prefixed ``us.anthropic.…``); None if unknown."""
    if model in PRICES:
        return PRICES[model]
    bedrock = _BEDROCK_ID.match(model)
    if bedrock is not None:
        return price_for(bedrock.group("model"))
    candidates = [name for name in PRICES if model.startswith(name + "-")]
    return PRICES[max(candidates, key=len)] if candidates else None
