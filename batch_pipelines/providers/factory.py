"""Building a provider client from configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batch_pipelines.providers.anthropic import AnthropicProvider
from batch_pipelines.providers.bedrock import BedrockProvider
from batch_pipelines.providers.local import LocalProvider
from batch_pipelines.providers.openai import OpenAIProvider
from batch_pipelines.wire.provider import BatchProvider

PROVIDERS: dict[str, type[OpenAIProvider] | type[AnthropicProvider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}


def make_provider(
    name: str,
    *,
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    work_dir: Path | None = None,
    **params: Any,
) -> BatchProvider:
    """A provider client by name: ``"openai"`` (also any OpenAI-compatible server, e.g. vLLM, given its
    ``base_url``), ``"anthropic"``, ``"bedrock"`` (AWS batch inference through S3; ``api_key`` does not
    apply), or ``"local"`` (a sentence-transformers model run on this machine, its
    batches under ``work_dir``; ``base_url`` and ``api_key`` do not apply). ``params`` go to the client
    (``limits``, ``price``, …)."""
    if name.lower() == LocalProvider.name:
        local: BatchProvider = LocalProvider(model, work_dir=work_dir, **params)
        return local
    if name.lower() == BedrockProvider.name:  # AWS credentials, role and S3 location: see BedrockProvider
        return BedrockProvider(model, base_url=base_url, **params)
    try:
        cls = PROVIDERS[name.lower()]
    except KeyError:
        known = sorted([*PROVIDERS, LocalProvider.name, BedrockProvider.name])
        raise ValueError(f"unknown provider {name!r}; choose one of {known}") from None
    provider: BatchProvider = cls(model, base_url=base_url, api_key=api_key, **params)
    return provider
