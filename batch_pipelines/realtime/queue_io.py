"""One process's traffic with the work queue, batched: a lease transaction serves every idle worker, and
results finished while a commit runs are written together in the next one (group commit).

A transaction costs about the same for one item as for dozens, so at hundreds of calls per second this,
not the provider, would otherwise bound a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from batch_pipelines.engine.spend import CallSpend, SpendSink
from batch_pipelines.realtime.queue import Lease, Outcome, WorkQueue

IDLE_POLL_S = 0.5


class LeaseDispatcher:
    """Leases ``unit`` items per idle worker in one transaction and hands them out, ``unit`` at a time.

    ``run`` ends once the queue holds no open item (nothing pending, nothing leased by anyone); workers
    calling ``next`` then get None. With nothing leasable it waits for the queue's next moment, at most
    ``poll_s`` (other processes' progress shows only in the queue), and wakes early whenever ``writer``
    commits (this process finished items: the queue may be drained now).
    """

    def __init__(
        self, queue: WorkQueue, owner: str, unit: int, writer: ResultWriter, poll_s: float = IDLE_POLL_S
    ) -> None:
        self.queue = queue
        self.owner = owner
        self.unit = unit
        self.writer = writer
        self.poll_s = poll_s
        self._idle = 0
        self._someone_idle = anyio.Event()
        self._send, self._receive = anyio.create_memory_object_stream[list[Lease]](0)

    async def next(self) -> list[Lease] | None:
        # The dispatcher counts a worker busy as soon as it hands it a unit (the worker may not have
        # resumed yet); a worker that leaves without a unit takes itself off the count.
        self._idle += 1
        self._someone_idle.set()
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            self._idle -= 1
            return None
        except BaseException:  # cancelled while waiting
            self._idle -= 1
            raise

    async def run(self) -> None:
        unsent: list[list[Lease]] = []
        try:
            async with self._send:
                while True:
                    # Lease only for workers waiting now, so no lease sits unworked while they are busy.
                    while self._idle == 0:
                        await self._someone_idle.wait()
                        self._someone_idle = anyio.Event()
                    written = self.writer.written  # taken first: a commit after this wakes the wait below
                    leases = await self.queue.lease(self.owner, self._idle * self.unit)
                    if not leases:
                        wakeup = await self.queue.next_wakeup()
                        if wakeup is None:
                            return
                        with anyio.move_on_after(min(wakeup, self.poll_s) + 0.01):
                            await written.wait()
                        continue
                    unsent = [leases[start : start + self.unit] for start in range(0, len(leases), self.unit)]
                    while unsent:
                        await self._send.send(unsent[0])
                        unsent.pop(0)
                        self._idle -= 1
        finally:
            if unsent:  # stopped while holding leases no worker took: hand them back
                with anyio.CancelScope(shield=True):
                    await self.queue.release([lease for unit in unsent for lease in unit])


@dataclass
class _Waiting:
    outcome: Outcome
    done: anyio.Event = field(default_factory=anyio.Event)
    state: str = ""


class ResultWriter:
    """Group commit of outcomes: ``submit`` returns once the outcome is in the queue (its new state).

    Paid calls noted with ``note_spend`` go to ``spend`` in the same rhythm, each group written before the
    outcomes of the same flush, so an outcome's calls are in the ledger before its result is. ``written``
    is set after each commit (and replaced by a fresh event): wait on it to hear of one.
    """

    def __init__(self, queue: WorkQueue, spend: SpendSink | None = None) -> None:
        self.queue = queue
        self.spend = spend
        self.written = anyio.Event()
        self._waiting: list[_Waiting] = []
        self._spent: list[CallSpend] = []
        self._wake = anyio.Event()
        self._closed = False

    def note_spend(self, call: CallSpend) -> None:
        if self.spend is not None:
            self._spent.append(call)

    async def submit(self, outcome: Outcome) -> str:
        waiting = _Waiting(outcome)
        self._waiting.append(waiting)
        self._wake.set()
        await waiting.done.wait()
        return waiting.state

    def close(self) -> None:
        """``run`` returns once everything submitted is written."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                if self._waiting or self._spent:
                    await self._flush()
                elif self._closed:
                    return
                else:
                    await self._wake.wait()
                    self._wake = anyio.Event()
        finally:
            with anyio.CancelScope(shield=True):  # results that were paid for reach the queue, even now
                while self._waiting or self._spent:
                    await self._flush()

    async def _flush(self) -> None:
        spent, self._spent = self._spent, []
        if spent and self.spend is not None:
            await self.spend.record(spent)
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        states = await self.queue.finish([waiting.outcome for waiting in batch])
        for waiting, state in zip(batch, states, strict=True):
            waiting.state = state
            waiting.done.set()
        self.written.set()
        self.written = anyio.Event()
