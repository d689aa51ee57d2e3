"""The exceptions the engine raises on purpose.

``BatchEngineError``, ``ProviderError`` and the transient-versus-permanent ``classify`` live in
:mod:`batch_pipelines.wire.errors` (the provider clients raise and use them too) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable

from batch_pipelines.wire.errors import (
    TRANSIENT_TYPES,
    BatchEngineError,
    BatchNotFoundError,
    ProviderError,
    classify,
)

__all__ = [
    "TRANSIENT_TYPES",
    "BatchEngineError",
    "BatchNotFoundError",
    "BudgetExceededError",
    "DuplicateRequestIdError",
    "JobNotFinishedError",
    "JobNotFoundError",
    "ProviderError",
    "classify",
]


class JobNotFoundError(BatchEngineError, KeyError):
    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"no batch job with id {self.job_id!r} in the store"


class DuplicateRequestIdError(BatchEngineError, ValueError):
    def __init__(self, duplicates: Iterable[str]) -> None:
        self.duplicates = sorted(set(duplicates))
        shown = ", ".join(repr(d) for d in self.duplicates[:20])
        more = f" and {len(self.duplicates) - 20} more" if len(self.duplicates) > 20 else ""
        super().__init__(f"request ids must be unique within a submission; duplicated: {shown}{more}")


class BudgetExceededError(BatchEngineError, ValueError):
    """A submission whose worst-case cost exceeds the budget it was given; refused before any upload.
    ``estimated_usd`` is that worst case, ``expected_usd`` the expected cost (engine.forecast)."""

    def __init__(
        self,
        job_id: str,
        estimated_usd: float | None,
        max_cost_usd: float,
        note: str = "",
        *,
        expected_usd: float | None = None,
    ) -> None:
        self.job_id = job_id
        self.estimated_usd = estimated_usd
        self.expected_usd = expected_usd
        self.max_cost_usd = max_cost_usd
        if estimated_usd is None:
            message = (
                f"job {job_id!r} refused: its cost cannot be estimated (no price for the model), so the "
                f"budget of ${max_cost_usd:.4f} cannot be guaranteed; give the provider a price"
            )
        else:
            expected = f", expected ${expected_usd:.4f}" if expected_usd is not None else ""
            message = (
                f"job {job_id!r} refused: its worst case ${estimated_usd:.4f} (every answer at "
                f"max_tokens{expected}) exceeds the budget of ${max_cost_usd:.4f}; nothing was uploaded"
            )
        super().__init__(message + (f" ({note})" if note else ""))


class JobNotFinishedError(BatchEngineError):
    """Results or a retry were asked for while provider batches are still running."""
