"""The realtime path: urgent items and self-hosted models through the provider's synchronous API.

Entry point (no Dagster here; the ``mode: realtime|auto`` wiring calls these)::

    from batch_pipelines.ratelimit import RateLimiter
    from batch_pipelines.realtime import (
        QueueItem, WorkQueue, make_realtime_provider, process_realtime, suggested_concurrency,
    )

    concurrency = suggested_concurrency(requests_per_minute=600, expected_latency_s=1.0)
    provider = make_realtime_provider("openai", model="gpt-4o-mini", base_url=...,
                                      max_connections=concurrency)
    limiter = RateLimiter.from_url("sqlite:///data/limiter.db", requests_per_minute=600,
                                   tokens_per_minute=200_000, key="openai:gpt-4o-mini")
    queue = WorkQueue("data/realtime.db", name="tickets:2026-01-02")
    summary = await process_realtime(
        [QueueItem(request, priority=9), other_request, ...],   # BatchRequest or QueueItem; None resumes
        provider_client=provider, limiter=limiter, queue=queue, concurrency=concurrency,
        response_schema=None, packing=None,                    # or Packing(items_per_prompt=10)
    )
    results = await queue.results()   # list[BatchResult]: one per item, successes and dead letters alike

``RealtimeSummary`` counts what the call did (answered, dead_lettered, requests_sent, rate_limited, tokens,
cost) and the queue's state after it (``summary.queue.open == 0`` when all is finished). Results are the
engine's ``BatchResult`` (id, response, error, error_type, retryable, input_tokens, output_tokens, cost_usd
at the realtime price, parsed, embedding, attempt), so they land in the same results table as batch ones.

Guarantees:

- Every HTTP attempt takes one request and its estimated tokens from the shared ``RateLimiter`` and is
  settled with the tokens the provider's limiter counted; each process also paces itself by the
  provider's rate-limit headers (``ProviderBudget``) so it never asks for more than the provider says
  remains; the calls waiting for that budget go highest priority first.
- Transient failures are retried with tenacity (retry-after-ms / retry-after, else exponential backoff with
  jitter; ``max_call_attempts`` sends); permanent ones never are and go to the dead-letter table.
- The ``WorkQueue`` (SQLite, BEGIN IMMEDIATE) leases items by priority with a visibility timeout; a
  result is written before its ack, in the same transaction; a dead worker's items are delivered again
  when their leases expire and dead-lettered after ``max_attempts`` deliveries. Running
  ``process_realtime(None, …)`` on the same queue resumes a crashed run; an item with a result is never
  sent again. (An answer lost with a worker killed mid-call, or answered within the last commit's 50 ms
  linger, is paid again: nothing durable knows of it.) Choose ``visibility_timeout_s`` above the longest
  one item can take (its retries and waits); from 120 s up the dispatcher leases one unit per task at
  once, so an item may also wait in hand for one unit of work. Queue traffic is grouped per process (a
  lease transaction for many tasks, one commit for what finished within 50 ms): ~2,000 items/s per
  process against the emulator with no limits (``benchmarks/realtime_ceiling.py``).
- ``process_auto`` (``routing``) sends urgent items (``UrgencyRule``: priority threshold and/or predicate)
  through the realtime path and submits the rest as a batch job; ``collect_results`` joins both.
- ``Packing`` puts up to k items with the same shape in one call when they fit the context window and
  falls back to single calls for items whose answer is missing or invalid.
- ``process_realtime(..., spend=SpendLedger(store, scope))`` writes every paid call (a pack once) to the
  store's spend ledger in groups, before the results those calls produced (``engine.spend``); results
  carry ``path`` (``realtime`` or ``packed``).
- ``make_realtime_provider("openai"|"anthropic", model=…, base_url=…, max_connections=…)`` builds the
  client with a pool sized to the run, sending through one pooled aiohttp session (``transport="httpx"``
  for httpx's pool instead; see ``providers.realtime_http``).
"""

from batch_pipelines.realtime.caller import CallCounters, RealtimeCaller
from batch_pipelines.realtime.clients import make_realtime_provider
from batch_pipelines.realtime.packing import Packing
from batch_pipelines.realtime.pool import RealtimeSummary, process_realtime, suggested_concurrency
from batch_pipelines.realtime.provider_budget import ProviderBudget
from batch_pipelines.realtime.queue import DeadLetter, Lease, Outcome, QueueCounts, QueueItem, WorkQueue
from batch_pipelines.realtime.routing import (
    AutoOutcome,
    UrgencyRule,
    collect_results,
    process_auto,
    split_urgent,
)

__all__ = [
    "AutoOutcome",
    "CallCounters",
    "DeadLetter",
    "Lease",
    "Outcome",
    "Packing",
    "ProviderBudget",
    "QueueCounts",
    "QueueItem",
    "RealtimeCaller",
    "RealtimeSummary",
    "UrgencyRule",
    "WorkQueue",
    "collect_results",
    "make_realtime_provider",
    "process_auto",
    "process_realtime",
    "split_urgent",
    "suggested_concurrency",
]
