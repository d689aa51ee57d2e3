"""Building a provider client from configuration."""

from __future__ import annotations

from typing import Any

from batch_pipelines.providers.anthropic import AnthropicProvider
from batch_pipelines.providers.base import BatchProvider
from batch_pipelines.providers.openai import OpenAIProvider

PROVIDERS: dict[str, type[OpenAIProvider] | type[AnthropicProvider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}


def make_provider(
    name: str, *, model: str, base_url: str | None = None, api_key: str | None = None, **params: Any
) -> BatchProvider:
    """A provider client by name: ``"openai"`` (also any OpenAI-compatible server, e.g. vLLM, given its
    ``base_url``) or ``"anthropic"``. ``params`` go to the client (``limits``, ``price``, …)."""
    try:
        cls = PROVIDERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; choose one of {sorted(PROVIDERS)}") from None
    provider: BatchProvider = cls(model, base_url=base_url, api_key=api_key, **params)
    return provider
