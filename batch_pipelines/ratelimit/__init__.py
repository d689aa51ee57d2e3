"""A requests-per-minute and tokens-per-minute limit shared by every worker, process and machine.

``RateLimiter.from_url(url, requests_per_minute=…, tokens_per_minute=…, key=…)`` opens a limiter on
``memory://`` (one process), ``sqlite:///file.db`` (the processes of one machine) or
``redis://host:port/db`` (many machines). ``await limiter.acquire(tokens)`` takes one request and the
estimated tokens together, ``await limiter.settle(reservation, actual_tokens)`` corrects the estimate.

Why not an existing library (checked: limits 5.8.0, pyrate-limiter 4.5.1, aiolimiter 1.3.0):

- ``limits`` checks one limit per ``hit``: a request and its tokens would be two hits on two limits, so a
  process can win the request and lose the tokens (not both-or-neither). Its weighted moving window
  pushes one list entry per unit of cost (memory grows with the token limit), it has no SQLite storage
  and no give-back, and it never waits: callers poll.
- ``pyrate-limiter`` applies one weight to every rate of a bucket, so "1 request and N tokens" cannot
  be one decision; two buckets are two decisions. Its constant-state GCRA runs in Redis with the
  client's clock (not the server's ``TIME``), its SQLite bucket stores one row per unit of weight, and
  it cannot give back an over-estimate.
- ``aiolimiter`` is a leaky bucket inside one asyncio event loop: one limit, no processes, no machines.

So the limiter keeps two theoretical-arrival-time numbers per key (``gcra.py``) and decides on both in one
atomic step per backend: a lock (memory), a ``BEGIN IMMEDIATE`` transaction (SQLite), a Lua script
(Redis).

Guarantees, per key: over any interval of ``L`` seconds at most ``limit * L / period`` plus the burst is
admitted, where the burst is ``burst_seconds`` worth of each limit (at least one request; for tokens at
least the largest single request, which waits for a full bucket). A request above the whole token limit
raises ``RequestTooLargeError`` at once. A refused caller sleeps exactly until its request fits (plus a
few milliseconds of jitter at most) and asks again; callers in one process queue first-come
first-served, so each admission costs about one refused decision per *process* waiting at the same time,
never a spin.
"""

from batch_pipelines.ratelimit.limiter import DEFAULT_KEY, RateLimiter, Reservation
from batch_pipelines.ratelimit.policy import LimitPolicy, RequestTooLargeError

__all__ = ["DEFAULT_KEY", "LimitPolicy", "RateLimiter", "RequestTooLargeError", "Reservation"]
