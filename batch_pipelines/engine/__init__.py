"""The provider-agnostic batch engine (no Dagster here)."""

from batch_pipelines.engine.errors import (
    BatchEngineError,
    DuplicateRequestIdError,
    JobNotFinishedError,
    JobNotFoundError,
    ProviderError,
)
from batch_pipelines.engine.limits import BatchLimits
from batch_pipelines.engine.manager import BatchManager
from batch_pipelines.engine.models import (
    BatchJob,
    BatchRequest,
    BatchResult,
    BatchStatus,
    JobCost,
    JobProgress,
)
from batch_pipelines.engine.pricing import ModelPrice
from batch_pipelines.engine.store import BatchStore

__all__ = [
    "BatchEngineError",
    "BatchJob",
    "BatchLimits",
    "BatchManager",
    "BatchRequest",
    "BatchResult",
    "BatchStatus",
    "BatchStore",
    "DuplicateRequestIdError",
    "JobCost",
    "JobNotFinishedError",
    "JobNotFoundError",
    "JobProgress",
    "ModelPrice",
    "ProviderError",
]
