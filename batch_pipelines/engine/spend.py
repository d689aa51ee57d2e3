"""The spend ledger of the realtime path: what every paid call cost, kept beside the batch jobs.

A batch job's cost comes from the usage its provider batches report. A realtime call has no job to hang
on, so each paid call (answered, or answered with something unparsable; a pack counts once) is one row
in the store's ``bp_spend`` table, written in groups, tagged with the pipeline, partition and the path
that paid it: ``realtime`` (one item per call) or ``packed`` (several items per call). ``cost`` and the
``costs`` view add these rows to the batch jobs'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

REALTIME = "realtime"
PACKED = "packed"


@dataclass(frozen=True, slots=True)
class CallSpend:
    """One paid call: its path, the items it carried, its reported usage and cost (None: unpriced)."""

    path: str
    items: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class SpendScope:
    """What a group of calls is spent on: labels shared by every row a run writes."""

    pipeline: str | None
    partition_key: str | None
    job_id: str
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class SpendTotal:
    """The ledger summed over one (pipeline, partition, job id, provider, model, path)."""

    pipeline: str | None
    partition_key: str | None
    job_id: str
    provider: str
    model: str
    path: str
    calls: int
    items: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int
    first_recorded_at: float


class SpendSink(Protocol):
    """Where a realtime run writes its calls' spend, a group at a time."""

    async def record(self, calls: Sequence[CallSpend]) -> None: ...


class SpendRecorder(Protocol):
    async def add_spend(self, scope: SpendScope, calls: Sequence[CallSpend]) -> None: ...


@dataclass(frozen=True)
class SpendLedger:
    """A SpendSink writing to a store (a BatchStore) under one scope."""

    store: SpendRecorder
    scope: SpendScope

    async def record(self, calls: Sequence[CallSpend]) -> None:
        await self.store.add_spend(self.scope, calls)
