"""The provider protocol, defined in :mod:`batch_pipelines.wire.provider` (kept importable from here)."""

from batch_pipelines.wire.provider import BatchProvider, LineError, ProviderBatchState, ResultRecordsProvider

__all__ = ["BatchProvider", "LineError", "ProviderBatchState", "ResultRecordsProvider"]
