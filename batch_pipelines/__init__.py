"""batch_pipelines: large language-model workloads in batch, as a Dagster code location."""

from typing import TYPE_CHECKING, Any

# The public engine API, imported on first use so `batch-pipelines --help` stays fast.
_ENGINE_EXPORTS = {
    "BatchJob": "batch_pipelines.engine.models",
    "BatchManager": "batch_pipelines.engine.manager",
    "BatchRequest": "batch_pipelines.engine.models",
    "BatchResult": "batch_pipelines.engine.models",
    "BatchStatus": "batch_pipelines.engine.models",
    "BatchStore": "batch_pipelines.engine.store",
    "BatchLimits": "batch_pipelines.engine.limits",
    "OpenAIProvider": "batch_pipelines.providers.openai",
    "AnthropicProvider": "batch_pipelines.providers.anthropic",
    "make_provider": "batch_pipelines.providers.factory",
}
__all__ = sorted(_ENGINE_EXPORTS)

if TYPE_CHECKING:
    from batch_pipelines.engine.limits import BatchLimits as BatchLimits
    from batch_pipelines.engine.manager import BatchManager as BatchManager
    from batch_pipelines.engine.models import BatchJob as BatchJob
    from batch_pipelines.engine.models import BatchRequest as BatchRequest
    from batch_pipelines.engine.models import BatchResult as BatchResult
    from batch_pipelines.engine.models import BatchStatus as BatchStatus
    from batch_pipelines.engine.store import BatchStore as BatchStore
    from batch_pipelines.providers.anthropic import AnthropicProvider as AnthropicProvider
    from batch_pipelines.providers.factory import make_provider as make_provider
    from batch_pipelines.providers.openai import OpenAIProvider as OpenAIProvider


def __getattr__(name: str) -> Any:
    if name in _ENGINE_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_ENGINE_EXPORTS[name]), name)
    raise AttributeError(f"module 'batch_pipelines' has no attribute {name!r}")
