"""The realtime providers' HTTP pool: one POST of ready-made JSON bytes, the answer as status, headers, body.

The realtime path sends thousands of small calls a second, so the client does as little per call as it
can: the URL and headers are built once, the body is already encoded, and nothing is parsed beyond what
aiohttp does anyway. ``"aiohttp"`` (the default) uses one pooled ``aiohttp.ClientSession`` directly;
``"httpx"`` uses httpx's own pool (slower: URL merging, cookie handling and request models per call).
Measured with ``benchmarks/realtime_ceiling.py`` (figures in README.md).

A connection failure or timeout is a retryable :class:`ProviderError`; an answer of any status is
returned for the caller to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp
import httpx

from batch_pipelines.wire.errors import ProviderError

TransportKind = Literal["aiohttp", "httpx"]
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


class RealtimeHTTP:
    """POSTs to one provider's base URL with fixed headers, over a pool of ``max_connections``."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_connections: int,
        timeout_s: float,
        transport: TransportKind = "aiohttp",
    ) -> None:
        if transport not in ("aiohttp", "httpx"):
            raise ValueError(f"unknown transport {transport!r}; choose 'aiohttp' or 'httpx'")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self._headers = {**headers, **JSON_HEADERS}
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        # Both pools bind to the running event loop, so they are made on first use.
        self._session: aiohttp.ClientSession | None = None
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        # Headers hold the key: never part of the representation.
        return f"RealtimeHTTP({self.provider!r}, {self.base_url!r}, transport={self.transport!r})"

    async def post(self, path: str, body: bytes) -> RawResponse:
        url = self.base_url + path
        try:
            if self.transport == "aiohttp":
                async with self._aiohttp().post(url, data=body, headers=self._headers) as response:
                    return RawResponse(response.status, response.headers, await response.read())
            answer = await self._httpx().post(url, content=body, headers=self._headers)
            return RawResponse(answer.status_code, answer.headers, answer.content)
        except (TimeoutError, aiohttp.ClientError, httpx.TransportError) as error:
            raise ProviderError(
                f"POST {path}: {type(error).__name__}: {error}",
                provider=self.provider,
                error_type="connection",
                retryable=True,
            ) from None

    def _aiohttp(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                # Per phase, as httpx applies a timeout (not a total): waiting for a pooled connection or
                # connecting, then each read. A total would also abandon answers that were merely slow
                # to be picked up on a busy machine, and an abandoned answer is paid again.
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self._timeout_s,
                    sock_connect=self._timeout_s,
                    sock_read=self._timeout_s,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    def _httpx(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self._max_connections, max_keepalive_connections=self._max_connections
            )
            self._client = httpx.AsyncClient(timeout=self._timeout_s, limits=limits)
        return self._client

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
