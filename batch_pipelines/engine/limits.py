"""Batch limits and the prompt-token estimate, defined in :mod:`batch_pipelines.wire.limits`."""

from batch_pipelines.wire.limits import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, BatchLimits, estimate_tokens

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_MESSAGE", "BatchLimits", "estimate_tokens"]
