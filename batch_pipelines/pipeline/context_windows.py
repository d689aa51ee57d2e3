"""How many tokens each known model takes in one request (prompt plus answer), to refuse rows whose prompt
cannot fit before they are sent. Unknown models are not checked; the provider's own error still applies."""

from __future__ import annotations

CHARS_PER_TOKEN = 4.0  # a tokenizer-free estimate for English text; providers count exactly

CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o-mini": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
    "text-embedding-3-small": 8_191,
    "text-embedding-3-large": 8_191,
    "claude-3-5-haiku-latest": 200_000,
    "claude-3-haiku-20240307": 200_000,
    "claude-haiku-4-5": 200_000,
    "claude-sonnet-4-5": 200_000,
    "claude-sonnet-4": 200_000,
    "claude-opus-4-1": 200_000,
}


def context_window(model: str) -> int | None:
    """The model's context window in tokens, also for dated snapshots; None when unknown."""
    if model in CONTEXT_WINDOWS:
        return CONTEXT_WINDOWS[model]
    candidates = [name for name in CONTEXT_WINDOWS if model.startswith(name + "-")]
    return CONTEXT_WINDOWS[max(candidates, key=len)] if candidates else None
