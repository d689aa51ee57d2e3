"""The provider protocol, defined in :mod:`batch_pipelines.wire.provider` (kept importable from here)."""

from batch_pipelines.wire.provider import BatchProvider, LineError, ProviderBatchState

__all__ = ["BatchProvider", "LineError", "ProviderBatchState"]
