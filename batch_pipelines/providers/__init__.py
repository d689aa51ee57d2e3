"""Provider batch API clients (httpx only), each written from the provider's wire format."""

from batch_pipelines.providers.anthropic import AnthropicProvider
from batch_pipelines.providers.factory import make_provider
from batch_pipelines.providers.openai import OpenAIProvider
from batch_pipelines.wire.provider import BatchProvider, ProviderBatchState

__all__ = [
    "AnthropicProvider",
    "BatchProvider",
    "OpenAIProvider",
    "ProviderBatchState",
    "make_provider",
]
