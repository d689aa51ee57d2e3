"""Dynamic batching for an in-process model: which items share a forward pass.

A forward pass pads every item to the longest one, so it costs about (longest item) x (items) tokens.
Items are sorted by length (longest first, so an out-of-memory pass shows up early) and packed while
that padded size stays within a token budget. When a pass runs out of memory the budget halves and the
items not yet embedded are planned again; an item that fails alone gets an error of its own.

Host work for a pass (``prepare``: padding token ids, copying them to pinned memory) runs on a thread one
pass ahead, so it overlaps the previous pass's forward (torch releases the GIL while it computes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Vectors = Any  # one vector per item of the pass: a (items, dimensions) float32 array, or lists


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """One forward pass: the item indices it covered and their vectors, or the error that sank them."""

    indices: list[int]
    vectors: Vectors | None = None
    error: str | None = None


def plan_passes(
    lengths: Sequence[int], *, token_budget: int, max_batch_size: int, sort_by_length: bool = True
) -> list[list[int]]:
    """Item indices grouped into passes of at most ``max_batch_size`` items and ``token_budget`` padded
    tokens (an item longer than the budget gets a pass of its own)."""
    if token_budget < 1 or max_batch_size < 1:
        raise ValueError(
            f"token_budget and max_batch_size must be positive, got {token_budget}, {max_batch_size}"
        )
    order = list(range(len(lengths)))
    if sort_by_length:
        order.sort(key=lambda index: lengths[index], reverse=True)
    passes: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = max(1, lengths[index])
        widest = max(longest, length)
        if current and (len(current) >= max_batch_size or widest * (len(current) + 1) > token_budget):
            passes.append(current)
            current, widest = [], length
        current.append(index)
        longest = widest
    if current:
        passes.append(current)
    return passes


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, a CPU allocator failure, or Python's MemoryError."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _take(items: Any, indices: list[int]) -> list[Any]:
    return [items[index] for index in indices]


class AdaptiveBatcher:
    """Runs items through ``encode`` pass by pass, halving the token budget whenever a pass runs out of
    memory. The budget it settles on is kept for later calls (``token_budget``).

    ``prepare(items, indices)`` builds what ``encode`` takes for one pass (default: the list of those
    items); when given, it runs on a host thread one pass ahead of ``encode``.
    """

    def __init__(
        self,
        encode: Callable[[Any], Vectors],
        *,
        token_budget: int,
        max_batch_size: int,
        sort_by_length: bool = True,
        release_memory: Callable[[], None] = lambda: None,
        prepare: Callable[[Any, list[int]], Any] | None = None,
    ) -> None:
        self.encode = encode
        self.token_budget = token_budget
        self.max_batch_size = max_batch_size
        self.sort_by_length = sort_by_length
        self.release_memory = release_memory
        self.prepare = prepare
        self.out_of_memory_events = 0

    def run(self, items: Any, lengths: Sequence[int]) -> Iterator[PassOutcome]:
        """One outcome per pass, as each finishes (so the caller can persist and check for cancellation).
        ``items`` is anything ``prepare`` reads (by default a sequence indexed like ``lengths``)."""
        if self.prepare is None:
            yield from self._run(items, lengths, None)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-host") as host:
            yield from self._run(items, lengths, host)

    def _run(
        self, items: Any, lengths: Sequence[int], host: ThreadPoolExecutor | None
    ) -> Iterator[PassOutcome]:
        prepare = self.prepare or _take
        pending = list(range(len(lengths)))
        while pending:
            finished: set[int] = set()
            shrunk = False
            plan = self._plan(pending, lengths)
            ahead: Future[Any] | None = None
            for number, indices in enumerate(plan):
                if host is None:
                    prepared = prepare(items, indices)
                else:
                    prepared = (ahead or host.submit(prepare, items, indices)).result()
                    ahead = host.submit(prepare, items, plan[number + 1]) if number + 1 < len(plan) else None
                try:
                    vectors = self.encode(prepared)
                except Exception as error:
                    if not is_out_of_memory(error):
                        raise
                    del prepared
                    self.out_of_memory_events += 1
                    self.release_memory()
                    if len(indices) > 1:
                        self._shrink(indices, lengths)
                        shrunk = True
                        break
                    finished.add(indices[0])
                    message = f"out of memory embedding this item alone ({lengths[indices[0]]} tokens)"
                    yield PassOutcome(indices, error=message)
                    continue
                finished.update(indices)
                yield PassOutcome(indices, vectors=vectors)
            if ahead is not None:
                ahead.cancel()
            pending = [index for index in pending if index not in finished]
            if not shrunk:
                return

    def _plan(self, pending: list[int], lengths: Sequence[int]) -> list[list[int]]:
        plan = plan_passes(
            [lengths[index] for index in pending],
            token_budget=self.token_budget,
            max_batch_size=self.max_batch_size,
            sort_by_length=self.sort_by_length,
        )
        return [[pending[position] for position in group] for group in plan]

    def _shrink(self, failed: list[int], lengths: Sequence[int]) -> None:
        """Half of what just failed becomes the new ceiling, for this call and the next ones."""
        padded = max(lengths[index] for index in failed) * len(failed)
        self.token_budget = max(1, min(self.token_budget, padded) // 2)
        self.max_batch_size = max(1, min(self.max_batch_size, len(failed)) // 2)
