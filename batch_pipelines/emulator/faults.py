"""Which requests fail and how: explicit markers in the request text first, then seeded error rates.

A marker is ``[[emulator:NAME]]`` anywhere in a request (usually the prompt), or ``[[emulator:NAME:N]]``
to fail only the first N attempts of that exact request and succeed afterwards (a transient fault).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter

from batch_pipelines.emulator.config import BATCH_FAULTS, REALTIME_FAULTS
from batch_pipelines.emulator.errors import ApiError

MARKER_PREFIX = "[[emulator:"
_MARKER = re.compile(r"\[\[emulator:([a-z_]+)(?::(\d+))?\]\]")

MARKERS = tuple(dict.fromkeys((*BATCH_FAULTS, *REALTIME_FAULTS)))


def _uniform(*parts: object) -> float:
    digest = hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """Decides the fault (or None) for one request; the same seed and requests give the same faults."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._random = random.Random(seed)
        self._attempts: Counter[str] = Counter()

    def _marked(self, text: str, allowed: tuple[str, ...]) -> str | None:
        for match in _MARKER.finditer(text):
            name, limit = match.group(1), match.group(2)
            if name not in allowed:
                continue
            if limit is None:
                return name
            key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest() + name
            self._attempts[key] += 1
            if self._attempts[key] <= int(limit):
                return name
        return None

    def batch_fault(self, request_text: str, rates: dict[str, float], allowed: tuple[str, ...]) -> str | None:
        """Seeded by the request text and how often it was submitted, so a resubmission draws again."""
        if MARKER_PREFIX in request_text:
            marked = self._marked(request_text, allowed)
            if marked is not None:
                return marked
        if not rates:
            return None
        key = hashlib.blake2b(request_text.encode(), digest_size=16).hexdigest()
        self._attempts[key] += 1
        draw = _uniform(self.seed, key, self._attempts[key])
        for name, rate in sorted(rates.items()):
            if draw < rate:
                return name
            draw -= rate
        return None

    def realtime_fault(
        self, request_text: str, rates: dict[str, float], allowed: tuple[str, ...]
    ) -> str | None:
        if MARKER_PREFIX in request_text:
            marked = self._marked(request_text, allowed)
            if marked is not None:
                return marked
        if not rates:
            return None
        draw = self._random.random()
        for name, rate in sorted(rates.items()):
            if draw < rate:
                return name
            draw -= rate
        return None


def fault_error(fault: str, provider: str, model: str = "the model") -> ApiError:
    """The error a provider answers for an injected fault (realtime or inside a batch)."""
    if fault == "invalid_request":
        return ApiError(400, "Invalid request: this request carries the emulator's invalid_request marker.")
    if fault == "rate_limited":
        message = f"Rate limit reached for {model} on requests per min (RPM). Please try again in 1s."
        if provider == "anthropic":
            message = "Number of requests has exceeded your per-minute rate limit."
        return ApiError(
            429, message, code="rate_limit_exceeded", kind=None if provider == "anthropic" else "requests"
        )
    if fault == "insufficient_quota":  # out of credit: a 429 that no wait fixes
        if provider == "anthropic":
            return ApiError(
                400,
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
                "to upgrade or purchase credits.",
            )
        return ApiError(
            429,
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes"
            "/api-errors.",
            code="insufficient_quota",
            kind="insufficient_quota",
        )
    if fault == "overloaded":
        if provider == "anthropic":
            return ApiError(529, "Overloaded")
        return ApiError(503, "The engine is currently overloaded, please try again later.")
    if fault == "unavailable":
        return ApiError(503, "The server is temporarily unavailable, please try again later.")
    if provider == "anthropic":
        return ApiError(500, "Internal server error")
    return ApiError(500, "The server had an error while processing your request. Sorry about that!")
