"""One process's traffic with the work queue, batched: a lease transaction serves many workers, and
results finished while a commit runs (or lingers) are written together in the next one (group commit).

A transaction costs about the same for one item as for dozens, so at hundreds of calls per second this,
not the provider, would otherwise bound a worker process.
"""

from __future__ import annotations

from collections import Counter

import anyio

from batch_pipelines.engine.spend import CallSpend, SpendSink
from batch_pipelines.realtime.queue import Lease, Outcome, WorkQueue

IDLE_POLL_S = 0.5
# A commit waits this long for more outcomes to join it (workers do not wait for it), up to MAX_GROUP.
LINGER_S = 0.05
MAX_GROUP = 256
# Leasing ahead holds an item while it waits for a worker to finish its current unit, so its lease must
# outlive two units of work; below this visibility timeout the dispatcher leases only for idle workers.
LEASE_AHEAD_MIN_VISIBILITY_S = 120.0


class LeaseDispatcher:
    """Leases items in one transaction for the idle workers and hands them out, ``unit`` at a time.

    When leases are long (``LEASE_AHEAD_MIN_VISIBILITY_S``) it leases ``ahead`` units at once (one per
    worker), so at a paced rate, where workers free up one at a time, a transaction still serves many
    items; otherwise one unit per idle worker, so no lease sits unworked while the workers are busy.

    ``run`` ends once the queue holds no open item (nothing pending, nothing leased by anyone); workers
    calling ``next`` then get None. With nothing leasable it waits for the queue's next moment, at most
    ``poll_s`` (other processes' progress shows only in the queue), and wakes early whenever ``writer``
    commits (this process finished items: the queue may be drained now).
    """

    def __init__(
        self,
        queue: WorkQueue,
        owner: str,
        unit: int,
        writer: ResultWriter,
        *,
        ahead: int = 1,
        poll_s: float = IDLE_POLL_S,
    ) -> None:
        self.queue = queue
        self.owner = owner
        self.unit = unit
        self.writer = writer
        self.poll_s = poll_s
        long_leases = queue.visibility_timeout_s >= LEASE_AHEAD_MIN_VISIBILITY_S
        self.ahead = ahead if long_leases else 1
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
                    while self._idle == 0:  # nobody to hand a lease to: lease nothing yet
                        await self._someone_idle.wait()
                        self._someone_idle = anyio.Event()
                    written = self.writer.written  # taken first: a commit after this wakes the wait below
                    leases = await self.queue.lease(self.owner, max(self._idle, self.ahead) * self.unit)
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


class ResultWriter:
    """Group commit of outcomes: ``put`` hands one over and returns at once; ``run`` writes what gathered.

    A worker does not wait for its outcome's commit (the writer owns it from ``put`` on, even if the
    worker is cancelled), so each commit carries what arrived within ``linger_s`` of the first outcome
    waiting, or ``max_group`` outcomes. Paid calls noted with ``note_spend`` go to ``spend`` in the same
    rhythm, each group written before the outcomes of the same flush, so an outcome's calls are in the
    ledger before its result is. ``written`` is set after each commit (and replaced by a fresh event);
    ``states`` counts the outcomes committed, by the item's new state.
    """

    def __init__(
        self,
        queue: WorkQueue,
        spend: SpendSink | None = None,
        *,
        linger_s: float = LINGER_S,
        max_group: int = MAX_GROUP,
    ) -> None:
        self.queue = queue
        self.spend = spend
        self.linger_s = linger_s
        self.max_group = max_group
        self.written = anyio.Event()
        self.states: Counter[str] = Counter()
        self._waiting: list[Outcome] = []
        self._spent: list[CallSpend] = []
        self._wake = anyio.Event()
        self._full = anyio.Event()
        self._closed = False

    def note_spend(self, call: CallSpend) -> None:
        if self.spend is not None:
            self._spent.append(call)

    def put(self, outcome: Outcome) -> None:
        self._waiting.append(outcome)
        self._wake.set()
        if len(self._waiting) >= self.max_group:
            self._full.set()

    def close(self) -> None:
        """``run`` returns once everything put (and every spend noted) is written."""
        self._closed = True
        self._wake.set()
        self._full.set()

    async def run(self) -> None:
        try:
            while True:
                if self._waiting or self._spent:
                    with anyio.move_on_after(self.linger_s):  # let others join this commit
                        await self._full.wait()
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
        if not self._closed:
            self._full = anyio.Event()
        # Both taken before any await: an outcome put while the spend is written waits for the next flush,
        # with its own spend, so no result is committed ahead of the calls that paid for it.
        spent, self._spent = self._spent, []
        group, self._waiting = self._waiting, []
        if spent and self.spend is not None:
            await self.spend.record(spent)
        if not group:
            return
        self.states.update(await self.queue.finish(group))
        self.written.set()
        self.written = anyio.Event()
