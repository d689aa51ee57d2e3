"""The Dagster resource: configuration from EnvVar, one budget per key across runs, the default location."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from batch_pipelines.components.rate_limiter_resource import RateLimiterResource

KEY = "openai:gpt-4o-mini"


def _requests_admitted_in_one_run(resource: RateLimiterResource, attempts: int) -> int:
    @dg.asset
    def admitted_requests(rate_limiter: RateLimiterResource) -> int:
        limiter = rate_limiter.limiter(KEY)
        return sum(limiter.try_acquire_sync(100) is not None for _ in range(attempts))

    result = dg.materialize([admitted_requests], resources={"rate_limiter": resource})
    assert result.success
    return int(result.output_for_node("admitted_requests"))


def test_runs_configured_from_env_vars_share_one_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Per minute, a bucket of 6 s holds 3 requests; nothing measurable refills while the test runs.
    monkeypatch.setenv("TEST_LIMITER_URL", f"sqlite:///{tmp_path / 'limiter.db'}")
    monkeypatch.setenv("TEST_LIMITER_RPM", "30")
    resource = RateLimiterResource(
        url=dg.EnvVar("TEST_LIMITER_URL"),
        requests_per_minute=dg.EnvVar.int("TEST_LIMITER_RPM"),
        tokens_per_minute=1_000_000,
        burst_seconds=6.0,
    )

    assert _requests_admitted_in_one_run(resource, attempts=2) == 2
    assert _requests_admitted_in_one_run(resource, attempts=2) == 1


def test_default_state_lives_in_the_project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_PIPELINES_HOME", str(tmp_path / "home"))
    resource = RateLimiterResource(requests_per_minute=60, tokens_per_minute=10_000)

    limiter = resource.limiter(KEY)
    limiter.acquire_sync(10)

    assert (tmp_path / "home" / "ratelimit.db").is_file()
    assert resource.limiter(KEY) is limiter
    assert resource.limiter("anthropic:claude-haiku") is not limiter
