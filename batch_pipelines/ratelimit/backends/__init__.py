"""Where limiter state lives: one process (memory), one machine (SQLite) or many machines (Redis)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from batch_pipelines.ratelimit.backends.base import LimiterBackend


def open_backend(url: str) -> LimiterBackend:
    """Open the backend a URL names: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs.db``, ``redis://…``.

    SQLite paths follow SQLAlchemy's convention: three slashes then a relative path, four for an
    absolute one.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from batch_pipelines.ratelimit.backends.memory import MemoryBackend

        return MemoryBackend()
    if scheme == "sqlite":
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ValueError(
                f"rate limiter url {url!r}: expected sqlite:///relative/file.db or sqlite:////abs/file.db"
            )
        from batch_pipelines.ratelimit.backends.sqlite import SqliteBackend

        return SqliteBackend(Path(url[len(prefix) :]))
    if scheme in ("redis", "rediss", "unix"):
        from batch_pipelines.ratelimit.backends.redis import RedisBackend

        return RedisBackend(url)
    raise ValueError(
        f"rate limiter url {url!r}: unknown scheme {scheme!r}; use memory://, sqlite:/// or redis://"
    )
