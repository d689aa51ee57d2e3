"""A batch's life on the scaled clock, for both providers.

At creation a batch gets a *plan*: when validation ends, when its last request is done, when finalizing
ends, when it expires. Requests finish one after another between the first two instants, in a seeded
shuffled order. The visible state is derived from the plan and the current time whenever the batch is
read, so a restarted emulator (with a state directory) continues exactly where the plan says. When a
terminal instant has passed (seen by a read, or by a timer set for that instant), the results are
produced once, in a worker thread, and the batch is frozen only when they are stored: until then it
reads as before (an OpenAI batch `finalizing`, an Anthropic one `in_progress`), as at the providers,
whose status calls answer at once while the output file is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from batch_pipelines.emulator.batch_lines import (
    anthropic_line,
    anthropic_unfinished_line,
    dumps_lines,
    openai_expired_line,
    openai_line,
    request_problem,
)
from batch_pipelines.emulator.config import BATCH_FAULTS, EmulatorConfig, ModelSettings
from batch_pipelines.emulator.prompt_cache import PromptCache
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.store import BatchRecord, BatchRequest

ACTIVE_OPENAI = ("validating", "in_progress", "finalizing", "cancelling")


def order_seed(seed: int, custom_ids: list[str]) -> str:
    digest = hashlib.blake2b("\n".join(custom_ids).encode(), digest_size=8).hexdigest()
    return f"{seed}:{digest}"


@lru_cache(maxsize=32)
def processing_order(seed_text: str, total: int) -> tuple[int, ...]:
    order = list(range(total))
    random.Random(seed_text).shuffle(order)
    return tuple(order)


@dataclass(frozen=True)
class Plan:
    validated_at: float
    work_done_at: float
    finalized_at: float
    expires_at: float


def new_plan(config: EmulatorConfig, created_at: float, total: int, scenario: str | None) -> Plan:
    life = config.lifecycle
    validated_at = created_at + config.scaled(life.validating_s)
    work = min(life.in_progress_max_s, max(life.in_progress_min_s, total * life.per_request_s))
    work_done_at = validated_at + config.scaled(work)
    finalizing = life.stuck_finalizing_s if scenario == "stuck_finalizing" else life.finalizing_s
    expires_at = created_at + config.scaled(life.completion_window_s)
    if scenario == "expire_half":
        expires_at = validated_at + (work_done_at - validated_at) * 0.5 + 1e-6
    elif scenario == "expire_all":
        expires_at = validated_at
    return Plan(validated_at, work_done_at, work_done_at + config.scaled(finalizing), expires_at)


def done_by(batch: BatchRecord, moment: float) -> int:
    """How many requests of the batch have finished at ``moment`` (ignoring cancel and expiry)."""
    if batch.total == 0 or moment <= batch.validated_at:
        return 0
    if moment >= batch.work_done_at:
        return batch.total
    span = batch.work_done_at - batch.validated_at
    return min(batch.total, math.floor(batch.total * (moment - batch.validated_at) / span))


def expires_before_done(batch: BatchRecord) -> bool:
    return batch.expires_at < batch.work_done_at


class Lifecycle:
    """Derives and freezes batch states; the provider routes only call ``refresh`` and ``cancel``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._faults: dict[str, list[str | None]] = {}
        self._producing: dict[str, asyncio.Task[None]] = {}

    # --- derived state -------------------------------------------------------------------------------
    def refresh(self, batch: BatchRecord) -> None:
        """Start producing the batch's results if its terminal instant has passed; it is frozen (its
        status final) once they are stored. Call from the event loop."""
        if batch.terminal_at is not None or batch.id in self._producing:
            return
        if self.runtime.store.batches.get(batch.id) is not batch:
            return  # forgotten through the admin API before its timer fired
        ending = self.ending(batch, time.time())
        if ending is None:
            return
        status, at, done = ending
        if status == "failed":  # a file that failed validation: nothing to produce
            self._freeze(batch, status, at, Outcome({"total": 0, "completed": 0, "failed": 0}))
            return
        # Faults are drawn here, on the loop: each draw counts the request's attempts in the injector.
        requests, faults = self.requests_of(batch), self.faults_of(batch)
        task = asyncio.get_running_loop().create_task(
            self._produce(batch, status, at, done, requests, faults)
        )
        self._producing[batch.id] = task
        task.add_done_callback(lambda _task: self._producing.pop(batch.id, None))

    def refresh_when_due(self, batch: BatchRecord) -> None:
        """Have the batch's results produced at its terminal instant, without waiting for a read."""
        due = min(batch.finalized_at, batch.expires_at, batch.cancel_done_at or math.inf)
        if math.isfinite(due):
            delay = max(0.0, due - time.time())
            asyncio.get_running_loop().call_later(delay, self.refresh, batch)

    def producing(self, batch: BatchRecord) -> bool:
        """Whether the batch has ended by its plan and its results are being produced now."""
        return batch.id in self._producing

    def ending(self, batch: BatchRecord, now: float) -> tuple[str, float, int] | None:
        """(final status, when, requests completed) once the plan says the batch has ended by ``now``;
        None while it runs. Cheap: producing the results is left to ``refresh``."""
        if batch.validation_pending:  # (nor does its window run out while the emulator checks the file)
            return None
        if batch.validation_errors:
            return ("failed", batch.validated_at, 0) if now >= batch.validated_at else None
        if batch.cancel_done_at is not None:
            if now >= batch.cancel_done_at:
                return "cancelled", batch.cancel_done_at, batch.cancel_completed
            return None
        if expires_before_done(batch) and now >= batch.expires_at:
            return "expired", batch.expires_at, done_by(batch, batch.expires_at)
        if now >= batch.finalized_at:
            return "completed", batch.finalized_at, batch.total
        return None

    def visible_status(self, batch: BatchRecord) -> str:
        if batch.status is not None:
            return batch.status
        now = time.time()
        if batch.cancel_requested_at is not None:
            return "cancelling"
        if now < batch.validated_at:
            return "validating"
        if now < batch.work_done_at:
            return "in_progress"
        return "finalizing"

    def progress(self, batch: BatchRecord) -> tuple[int, int]:
        """(completed, failed) requests right now, for a batch that has not ended."""
        if batch.total == 0:  # (also while its file is being checked: no faults are decided before)
            return 0, 0
        moment = time.time()
        if batch.cancel_requested_at is not None:
            moment = min(moment, batch.cancel_requested_at)
        done = done_by(batch, moment)
        faults = self.faults_of(batch)
        order = processing_order(batch.order_seed, batch.total)
        failed = sum(1 for index in order[:done] if faults[index] is not None)
        return done - failed, failed

    def enqueued_tokens(self, model: str) -> int:
        total, now = 0, time.time()
        for batch in self.runtime.store.batches.values():
            if batch.provider != "openai" or batch.model != model or batch.validation_errors:
                continue
            # Whether it has ended is enough here; its results are produced when someone reads it.
            if batch.terminal_at is None and self.ending(batch, now) is None:
                total += batch.enqueued_tokens
        return total

    # --- actions ------------------------------------------------------------------------------------
    def cancel(self, batch: BatchRecord) -> None:
        """Start cancelling: requests already running finish; the rest never start."""
        if self.producing(batch):
            return  # it has already ended by its plan; its results are being written
        now = time.time()
        config = self.runtime.config
        done = done_by(batch, now)
        in_flight = 0
        if now >= batch.validated_at:
            in_flight = min(batch.total - done, math.ceil(batch.total * config.lifecycle.in_flight_fraction))
        batch.cancel_requested_at = now
        batch.cancel_done_at = now + config.scaled(config.lifecycle.cancelling_s)
        batch.cancel_completed = done + in_flight
        self.runtime.store.save_batch(batch)
        self.refresh_when_due(batch)

    def faults_of(self, batch: BatchRecord) -> list[str | None]:
        """The fault (or None) of each request, decided once per batch: markers, seeded rates, bad bodies."""
        decided = self._faults.get(batch.id)
        if decided is None:
            rates = self.runtime.config.faults.batch_error_rates
            settings = self.runtime.config.model
            injector = self.runtime.faults
            everything_invalid = batch.provider == "anthropic" and batch.scenario == "fail_validation"
            decided = []
            for request in self.requests_of(batch):
                fault = "invalid_request" if everything_invalid else None
                fault = fault or injector.batch_fault(request.text, rates, BATCH_FAULTS)
                fault = fault or request_problem(batch.provider, batch.endpoint, request.body, settings)
                decided.append(fault)
            self._faults[batch.id] = decided
        return decided

    def requests_of(self, batch: BatchRecord) -> list[BatchRequest]:
        if not batch.requests and batch.provider == "openai" and batch.total:
            content = self.runtime.store.contents.get(batch.input_file_id, b"")
            for line in content.decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    item = json.loads(line)
                    batch.requests.append(BatchRequest(item["custom_id"], item.get("body", {}), line))
        return batch.requests

    # --- freezing -----------------------------------------------------------------------------------
    async def _produce(
        self,
        batch: BatchRecord,
        status: str,
        at: float,
        done: int,
        requests: list[BatchRequest],
        faults: list[str | None],
    ) -> None:
        order = processing_order(batch.order_seed, batch.total)
        runtime = self.runtime
        ended = Ended(
            batch,
            status,
            order[:done],
            order[done:],
            requests,
            faults,
            runtime.config.model,
            runtime.prompt_cache,
        )
        produce = openai_outcome if batch.provider == "openai" else anthropic_outcome
        outcome = await asyncio.to_thread(produce, ended)
        if self.runtime.store.batches.get(batch.id) is batch:  # (not forgotten meanwhile)
            self._freeze(batch, status, at, outcome)

    def _freeze(self, batch: BatchRecord, status: str, at: float, outcome: Outcome) -> None:
        store = self.runtime.store
        if outcome.output is not None:
            name = f"batch_{batch.id}_output.jsonl"
            batch.output_file_id = store.add_file(name, "batch_output", outcome.output).id
        if outcome.errors is not None:
            name = f"batch_{batch.id}_error.jsonl"
            batch.error_file_id = store.add_file(name, "batch_output", outcome.errors).id
        batch.counts = outcome.counts
        batch.usage = outcome.usage
        batch.results = outcome.results
        batch.status = status
        batch.terminal_at = at
        self._faults.pop(batch.id, None)
        store.save_batch(batch)
        self.runtime.counters[f"batches_{status}.{batch.provider}"] += 1
        self.runtime.bill(batch.provider, "batch", outcome.billed)


@dataclass(frozen=True)
class Ended:
    """A batch that has ended by its plan, with everything its results are made from."""

    batch: BatchRecord
    status: str
    finished: tuple[int, ...]  # request indexes, in processing order
    unfinished: tuple[int, ...]
    requests: list[BatchRequest]
    faults: list[str | None]
    settings: ModelSettings
    cache: PromptCache


@dataclass
class Outcome:
    """What a finished batch leaves behind: counts, usage, result files or lines, and what is billed."""

    counts: dict[str, int]
    usage: dict[str, int] = field(default_factory=dict)
    output: bytes | None = None  # OpenAI's output file
    errors: bytes | None = None  # OpenAI's error file, when a request failed
    results: list[str] | None = None  # Anthropic's result lines, in delivery order
    billed: list[dict[str, Any]] = field(default_factory=list)


def openai_outcome(ended: Ended) -> Outcome:
    """The output and error files of an ended OpenAI batch. Reads nothing shared: runs in a thread."""
    batch, status, finished, unfinished = ended.batch, ended.status, ended.finished, ended.unfinished
    requests, faults, settings, cache = ended.requests, ended.faults, ended.settings, ended.cache
    successes: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index in finished:
        line = openai_line(requests[index], batch.endpoint, faults[index], settings, cache)
        ok = line["response"] is not None and line["response"]["status_code"] == 200
        (successes if ok else errors).append(line)
    if status == "expired":
        errors.extend(openai_expired_line(requests[index]) for index in unfinished)
    shuffler = random.Random(batch.order_seed + ":output")
    shuffler.shuffle(successes)
    shuffler.shuffle(errors)
    counts = {"total": batch.total, "completed": len(successes), "failed": len(finished) - len(successes)}
    if status == "expired":
        counts["failed"] += len(unfinished)
    return Outcome(
        counts=counts,
        usage=_sum_usage(successes),
        output=dumps_lines(successes),
        errors=dumps_lines(errors) if errors else None,
        billed=[line["response"]["body"] for line in successes],
    )


def anthropic_outcome(ended: Ended) -> Outcome:
    """The result lines of an ended Anthropic batch. Reads nothing shared: runs in a thread."""
    requests, faults, settings, cache = ended.requests, ended.faults, ended.settings, ended.cache
    status, finished, unfinished = ended.status, ended.finished, ended.unfinished
    lines = [anthropic_line(requests[index], faults[index], settings, cache) for index in finished]
    leftover = "canceled" if status == "cancelled" else "expired"
    lines.extend(anthropic_unfinished_line(requests[index], leftover) for index in unfinished)
    random.Random(ended.batch.order_seed + ":output").shuffle(lines)
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for line in lines:
        counts[str(line["result"]["type"])] += 1
    return Outcome(
        counts=counts,
        results=[json.dumps(line, separators=(",", ":")) for line in lines],
        billed=[line["result"]["message"] for line in lines if line["result"]["type"] == "succeeded"],
    )


def _sum_usage(lines: list[dict[str, Any]]) -> dict[str, int]:
    prompt = completion = cached = 0
    for line in lines:
        usage = line["response"]["body"].get("usage", {})
        prompt += int(usage.get("prompt_tokens", 0))
        completion += int(usage.get("completion_tokens", 0))
        cached += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    total = prompt + completion
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": total,
        "cached_tokens": cached,
    }
