"""The shared rate limiter as a Dagster resource: one budget per provider+model for every run and step."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.workdir import resolve_workdir

LIMITER_FILE_NAME = "ratelimit.db"


def default_limiter_url() -> str:
    """SQLite in the project's working folder, shared by every process on this machine."""
    return f"sqlite:///{resolve_workdir() / LIMITER_FILE_NAME}"


class RateLimiterResource(dg.ConfigurableResource):
    """Where the limiter keeps its state and how much it allows.

    `url` takes `dg.EnvVar("NAME")` and the two limits `dg.EnvVar.int("NAME")` (Dagster resolves environment
    variables into str and int fields only, so `burst_seconds` is plain config).

    `limiter("openai:gpt-4o-mini")` returns the limiter for that provider+model; runs, steps and
    partitions that name the same key draw on one budget because they share the backend's state.
    """

    url: str | None = Field(
        default=None,
        description="memory://, sqlite:///relative.db, sqlite:////absolute.db or redis://host:port/db; "
        "default: SQLite in $BATCH_PIPELINES_HOME (else .batch_pipelines in the working directory).",
    )
    # Positivity is checked when the limiter is made: an unresolved EnvVar.int reads as 0 here.
    requests_per_minute: int = Field(description="Requests allowed per minute per key.")
    tokens_per_minute: int = Field(description="Tokens allowed per minute per key.")
    burst_seconds: float = Field(
        default=1.0, gt=0, description="Seconds' worth of each limit a full bucket holds."
    )

    _limiters: dict[str, RateLimiter] = PrivateAttr(default_factory=dict)

    def limiter(self, key: str) -> RateLimiter:
        """The limiter for one provider+model key, made once per resource instance."""
        if key not in self._limiters:
            self._limiters[key] = RateLimiter.from_url(
                self.url or default_limiter_url(),
                requests_per_minute=self.requests_per_minute,
                tokens_per_minute=self.tokens_per_minute,
                key=key,
                burst_seconds=self.burst_seconds,
            )
        return self._limiters[key]
