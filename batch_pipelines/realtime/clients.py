"""Building realtime provider clients: which provider, with a connection pool sized to the work.

``transport="aiohttp"`` (the default) sends through one pooled aiohttp session directly; ``"httpx"``
through httpx's own pool. ``benchmarks/realtime_ceiling.py`` and ``benchmarks/realtime.py`` measure both.
"""

from __future__ import annotations

from batch_pipelines.providers.anthropic_realtime import AnthropicRealtimeProvider
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.providers.realtime import RealtimeProvider
from batch_pipelines.providers.realtime_http import TransportKind


def make_realtime_provider(
    name: str,
    *,
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    max_connections: int = 64,
    transport: TransportKind = "aiohttp",
) -> RealtimeProvider:
    """``"openai"`` (also any OpenAI-compatible server such as vLLM, by ``base_url``) or ``"anthropic"``,
    with a connection pool of ``max_connections`` (use the run's concurrency)."""
    provider: RealtimeProvider
    if name.lower() == "openai":
        provider = OpenAIRealtimeProvider(
            model, base_url=base_url, api_key=api_key, max_connections=max_connections, transport=transport
        )
    elif name.lower() == "anthropic":
        provider = AnthropicRealtimeProvider(
            model, base_url=base_url, api_key=api_key, max_connections=max_connections, transport=transport
        )
    else:
        raise ValueError(f"unknown realtime provider {name!r}; choose 'openai' or 'anthropic'")
    return provider
