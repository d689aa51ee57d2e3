"""Prices per model, and the cost of tokens in batch and in realtime (shared by engine and providers)."""

from __future__ import annotations

from dataclasses import dataclass

BATCH_DISCOUNT = 0.5
DEFAULT_OUTPUT_TOKENS = 256  # assumed per chat request when estimating without max_tokens


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens at the synchronous (realtime) price; batches cost ``batch_discount`` of it."""

    input_per_million: float
    output_per_million: float
    batch_discount: float = BATCH_DISCOUNT

    def cost(self, input_tokens: int, output_tokens: int, *, batch: bool = True) -> float:
        usd = (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000
        return usd * self.batch_discount if batch else usd


# List prices (USD / 1M tokens). Override per provider with `prices=` when yours differ.
PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-5": ModelPrice(1.25, 10.00),
    "gpt-5-mini": ModelPrice(0.25, 2.00),
    "gpt-5-nano": ModelPrice(0.05, 0.40),
    "text-embedding-3-small": ModelPrice(0.02, 0.0),
    "text-embedding-3-large": ModelPrice(0.13, 0.0),
    "claude-3-5-haiku-latest": ModelPrice(0.80, 4.00),
    "claude-3-haiku-20240307": ModelPrice(0.25, 1.25),
    "claude-haiku-4-5": ModelPrice(1.00, 5.00),
    "claude-sonnet-4-5": ModelPrice(3.00, 15.00),
    "claude-sonnet-4": ModelPrice(3.00, 15.00),
    "claude-opus-4-1": ModelPrice(15.00, 75.00),
}


def price_for(model: str) -> ModelPrice | None:
    """The price of a model, also for dated snapshots (``gpt-4o-mini-2024-07-18``); None if unknown."""
    if model in PRICES:
        return PRICES[model]
    candidates = [name for name in PRICES if model.startswith(name + "-")]
    return PRICES[max(candidates, key=len)] if candidates else None
