"""Building realtime provider clients: which provider, a pool sized to the work, and the HTTP transport.

The transport sits under httpx's API either way: ``"aiohttp"`` (the default) is the aiohttp transport of
``httpx-aiohttp`` (what the openai SDK offers as its aiohttp option), ``"httpx"`` is httpx's own pool.
Measured against the emulator's chat endpoint on the 2-core development machine, 3,000 calls at
concurrency 64: httpx's pool 86-106 calls/s, the aiohttp transport 360-476 calls/s; at 30,000 RPM
(500 calls/s) that decides whether one worker process keeps up. ``benchmarks/realtime.py`` re-measures it.
"""

from __future__ import annotations

from typing import Literal

import httpx

from batch_pipelines.providers.anthropic_realtime import AnthropicRealtimeProvider
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.providers.realtime import RealtimeProvider

TransportKind = Literal["httpx", "aiohttp"]


def make_transport(kind: TransportKind, max_connections: int) -> httpx.AsyncBaseTransport | None:
    """A transport with a pool of ``max_connections`` (None for ``"httpx"``: the client builds its own)."""
    if kind == "httpx":
        return None
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
        return transport
    raise ValueError(f"unknown transport {kind!r}; choose 'httpx' or 'aiohttp'")


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
    pool = make_transport(transport, max_connections)
    provider: RealtimeProvider
    if name.lower() == "openai":
        provider = OpenAIRealtimeProvider(
            model, base_url=base_url, api_key=api_key, max_connections=max_connections, transport=pool
        )
    elif name.lower() == "anthropic":
        provider = AnthropicRealtimeProvider(
            model, base_url=base_url, api_key=api_key, max_connections=max_connections, transport=pool
        )
    else:
        raise ValueError(f"unknown realtime provider {name!r}; choose 'openai' or 'anthropic'")
    return provider
