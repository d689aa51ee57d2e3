"""The provider-agnostic batch engine (no Dagster here).

    provider = OpenAIProvider(model="gpt-4o-mini", base_url=..., api_key=...)  # or AnthropicProvider
    store = BatchStore(Path("batches.db"))            # or "sqlite:///…", "postgresql://…"; omit: in memory
    await store.initialize()
    manager = BatchManager(provider=provider, store=store)
    job = await manager.submit(requests, job_id="nightly-2026-11-22", metadata={...}, response_schema=None,
                               max_cost_usd=5.0)  # refused (BudgetExceededError) before upload if over
    job = await manager.refresh(job.id)               # poll the provider once; job.status, .detail, .progress
    async for result in manager.iter_results(job.id):  # once terminal: exactly one BatchResult per request
        ...
    await manager.retry_failed(job.id)                # resubmit transient failures only, as a new attempt

``get_job`` reads the store only; ``store.list_jobs(open_only=True, after=cursor)`` pages jobs for a
sensor. One job may span several provider batches (split by request count, bytes and the enqueued-token
pool of ``provider.limits``); each is recorded before it is created, so re-running ``submit`` with the
same ``job_id`` after a crash resumes the job instead of duplicating it.
"""

from batch_pipelines.engine.errors import (
    BatchEngineError,
    BudgetExceededError,
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
    "BudgetExceededError",
    "DuplicateRequestIdError",
    "JobCost",
    "JobNotFinishedError",
    "JobNotFoundError",
    "JobProgress",
    "ModelPrice",
    "ProviderError",
]
