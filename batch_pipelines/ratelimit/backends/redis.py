"""Limiter state in Redis, shared by every process on every machine.

One Lua script reads the server's clock (``TIME``), decides and writes in a single atomic step, so
machines with skewed clocks still share one timeline. Numbers cross the Lua boundary as strings:
Redis would truncate a Lua number reply to an integer, and ``tostring`` keeps only 14 digits.
Keys carry a prefix and expire once both buckets are full again, so nothing lingers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from batch_pipelines.ratelimit.gcra import Decision
from batch_pipelines.ratelimit.policy import LimitPolicy

KEY_PREFIX = "batch_pipelines:ratelimit:"

# ARGV: mode ('decide' or 'adjust'), request units, token units,
#       request interval, request tolerance, token interval, token tolerance (seconds).
# Reply: {admitted '1'/'0', server now, wait seconds}. Same arithmetic as gcra.py.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local mode = ARGV[1]
local requests = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local request_interval = tonumber(ARGV[4])
local request_tolerance = tonumber(ARGV[5])
local token_interval = tonumber(ARGV[6])
local token_tolerance = tonumber(ARGV[7])

local stored = redis.call('HMGET', KEYS[1], 'request_tat', 'token_tat')
local request_tat = tonumber(stored[1]) or now
local token_tat = tonumber(stored[2]) or now

local function fmt(x) return string.format('%.17g', x) end
local function moved(tat, units, interval)
  return math.max(math.max(tat, now) + units * interval, now)
end

if mode == 'decide' then
  local start = math.max(
    request_tat + math.min(0, requests * request_interval - request_tolerance),
    token_tat + math.min(0, tokens * token_interval - token_tolerance))
  if start > now then
    return {'0', fmt(now), fmt(start - now)}
  end
end

request_tat = moved(request_tat, requests, request_interval)
token_tat = moved(token_tat, tokens, token_interval)
redis.call('HSET', KEYS[1], 'request_tat', fmt(request_tat), 'token_tat', fmt(token_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(request_tat, token_tat) - now) * 1000) + 1000)
return {'1', fmt(now), '0'}
"""


def _arguments(mode: str, policy: LimitPolicy, requests: int, tokens: int) -> list[str | int | float]:
    return [
        mode,
        requests,
        tokens,
        repr(policy.request_interval),
        repr(policy.request_tolerance),
        repr(policy.token_interval),
        repr(policy.token_tolerance),
    ]


def _decision(reply: list[Any]) -> Decision:
    admitted, now, wait = (value.decode() if isinstance(value, bytes) else str(value) for value in reply)
    return Decision(admitted=admitted == "1", now=float(now), wait_seconds=float(wait))


class RedisBackend:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = redis.Redis.from_url(url, retry=Retry(ExponentialBackoff(), 3))
        self._script = self._client.register_script(_SCRIPT)
        # redis.asyncio clients belong to the event loop that made their connections.
        self._async_clients: dict[asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, Any]] = {}

    def decide(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        reply = self._script(keys=[KEY_PREFIX + key], args=_arguments("decide", policy, 1, tokens))
        return _decision(reply)

    async def decide_async(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        reply = await self._async_script()(
            keys=[KEY_PREFIX + key], args=_arguments("decide", policy, 1, tokens)
        )
        return _decision(reply)

    def adjust(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        self._script(keys=[KEY_PREFIX + key], args=_arguments("adjust", policy, requests, tokens))

    async def adjust_async(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        await self._async_script()(
            keys=[KEY_PREFIX + key], args=_arguments("adjust", policy, requests, tokens)
        )

    def close(self) -> None:
        self._client.close()
        self._async_clients.clear()

    async def close_async(self) -> None:
        client_and_script = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client_and_script is not None:
            await client_and_script[0].aclose()
        self.close()

    def _async_script(self) -> Any:
        loop = asyncio.get_running_loop()
        client_and_script = self._async_clients.get(loop)
        if client_and_script is None:
            self._async_clients = {
                known: existing for known, existing in self._async_clients.items() if not known.is_closed()
            }
            client = redis.asyncio.Redis.from_url(self.url, retry=AsyncRetry(ExponentialBackoff(), 3))
            client_and_script = (client, client.register_script(_SCRIPT))
            self._async_clients[loop] = client_and_script
        return client_and_script[1]
