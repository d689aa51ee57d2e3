"""Four processes share one limiter (SQLite file, then Redis) at a compressed time scale.

Every admission's backend timestamp is recorded; no window of one period may admit more than the limit
plus the burst, and every full-period window must reach 95% of the binding (token) limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch_pipelines.ratelimit import LimitPolicy

WORKER = Path(__file__).with_name("admission_worker.py")
PROCESSES = 4
RUN_SECONDS = 5.0
STARTUP_SECONDS = 2.0
POLICY = LimitPolicy(requests_per_period=400, tokens_per_period=30_000, period_seconds=2.0, burst_seconds=0.2)
MIN_TOKENS, MAX_TOKENS, OVERESTIMATE_TOKENS = 20, 180, 60


def _run_workers(url: str, key: str, tmp_path: Path) -> tuple[list[tuple[float, int]], int, float]:
    start_at = time.time() + STARTUP_SECONDS
    stop_at = start_at + RUN_SECONDS
    outputs = [tmp_path / f"worker-{index}.json" for index in range(PROCESSES)]
    workers = []
    for index, output in enumerate(outputs):
        settings = {
            "url": url,
            "key": key,
            "limits": {
                "requests_per_minute": POLICY.requests_per_period,
                "tokens_per_minute": POLICY.tokens_per_period,
                "period_seconds": POLICY.period_seconds,
                "burst_seconds": POLICY.burst_seconds,
            },
            "seed": index,
            "start_at": start_at,
            "stop_at": stop_at,
            "min_tokens": MIN_TOKENS,
            "max_tokens": MAX_TOKENS,
            "overestimate_tokens": OVERESTIMATE_TOKENS,
        }
        workers.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(settings), str(output)]))
    for worker in workers:
        assert worker.wait(timeout=STARTUP_SECONDS + RUN_SECONDS + 20) == 0
    results = [json.loads(output.read_text()) for output in outputs]
    admissions = sorted((at, tokens) for result in results for at, tokens in result["admissions"])
    return admissions, sum(result["decisions"] for result in results), stop_at


def _busiest_window(admissions: list[tuple[float, int]]) -> tuple[int, int]:
    """Most requests and most tokens admitted in any half-open window of one period."""
    most_requests = most_tokens = 0
    end = tokens_in_window = 0
    for start, (start_at, _) in enumerate(admissions):
        while end < len(admissions) and admissions[end][0] < start_at + POLICY.period_seconds:
            tokens_in_window += admissions[end][1]
            end += 1
        most_requests = max(most_requests, end - start)
        most_tokens = max(most_tokens, tokens_in_window)
        tokens_in_window -= admissions[start][1]
    return most_requests, most_tokens


def _leanest_full_window_tokens(admissions: list[tuple[float, int]], stop_at: float) -> int:
    """Fewest tokens admitted in any one-period window lying wholly inside the run, on a 50 ms grid."""
    first = admissions[0][0]
    starts = [
        first + step * 0.05 for step in range(int((stop_at - POLICY.period_seconds - first) / 0.05) + 1)
    ]
    return min(
        sum(tokens for at, tokens in admissions if start <= at < start + POLICY.period_seconds)
        for start in starts
    )


def _assert_shared_limit_held(admissions: list[tuple[float, int]], decisions: int, stop_at: float) -> None:
    most_requests, most_tokens = _busiest_window(admissions)
    assert most_requests <= POLICY.requests_per_period + POLICY.request_burst
    assert most_tokens <= POLICY.tokens_per_period + max(POLICY.token_burst, MAX_TOKENS + OVERESTIMATE_TOKENS)
    assert _leanest_full_window_tokens(admissions, stop_at) >= 0.95 * POLICY.tokens_per_period
    # Waiting is sleeping: each admission costs at most about one refused try per competing process,
    # however long the waits (a spinning limiter would make thousands).
    assert decisions <= (PROCESSES + 1) * len(admissions)


def test_four_processes_share_one_sqlite_file(tmp_path: Path, unique_key: str) -> None:
    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    _assert_shared_limit_held(*_run_workers(url, unique_key, tmp_path))


@pytest.mark.services
def test_four_processes_share_one_redis(redis_url: str, unique_key: str, tmp_path: Path) -> None:
    _assert_shared_limit_held(*_run_workers(redis_url, unique_key, tmp_path))
