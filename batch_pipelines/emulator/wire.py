"""Request plumbing shared by the routes: authentication, JSON bodies, durations and timestamps."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from batch_pipelines.emulator.errors import ApiError

_NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if "
    "you're accessing the API from your browser and are prompted for a username and password. You can "
    "obtain an API key from https://platform.openai.com/account/api-keys."
)


def _masked(key: str) -> str:
    return f"{key[:3]}{'*' * 6}{key[-4:]}" if len(key) > 8 else "*" * len(key)


def openai_key(request: Request, accepted: tuple[str, ...]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, _NO_KEY_MESSAGE)
    if accepted and key not in accepted:
        message = (
            f"Incorrect API key provided: {_masked(key)}. "
            "You can find your API key at https://platform.openai.com/account/api-keys."
        )
        raise ApiError(401, message, code="invalid_api_key")
    return key


_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def anthropic_key(request: Request, accepted: tuple[str, ...]) -> str:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = bearer.strip() if scheme.lower() == "bearer" else ""
    if not key or (accepted and key not in accepted):
        raise ApiError(401, "invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if not version:
        raise ApiError(400, "anthropic-version: header is required")
    if not _API_VERSION.match(version):
        raise ApiError(400, f"anthropic-version: {version!r} is not a valid version (YYYY-MM-DD)")
    return key


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            f"valid JSON: {error})",
        ) from error
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def go_duration(seconds: float) -> str:
    """Durations as OpenAI's rate-limit headers write them: ``12ms``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def rfc3339(unix_seconds: float | None) -> str | None:
    if unix_seconds is None:
        return None
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def drop_connection(send: Any) -> None:
    """Close the client's connection without any response (uvicorn's per-request transport)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("emulator: dropping the connection")
    transport.close()
    await asyncio.sleep(0)
