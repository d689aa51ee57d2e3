"""Request packing: several short items answered by one call, parsed back per item.

Items pack together when they differ only in their last user message (same system prompt, earlier
messages and parameters). The pack's prompt lists the items as a JSON object keyed ``"1"``…``"k"`` and asks
for a JSON object with one answer per key, enforced with a structured-output schema. A pack grows while
its estimated size (prompt plus output) fits ``context_window_tokens``. An item whose answer is missing,
or does not satisfy the item's own response schema, is answered by a single call instead; when the pack's
answer cannot be parsed at all, every item falls back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from batch_pipelines.engine.models import BatchRequest, BatchResult
from batch_pipelines.engine.spend import PACKED

DEFAULT_INSTRUCTION = (
    "You will receive several independent items as a JSON object whose keys are item numbers. Handle each "
    "item on its own as the instructions above say, and answer with one JSON object that has exactly the "
    "same keys, each mapped to that item's answer."
)


@dataclass(frozen=True, slots=True)
class Packing:
    """Up to ``items_per_prompt`` items per call while the call fits ``context_window_tokens``.

    ``answer_schema`` is the JSON schema of one item's answer inside the pack (default: the job's response
    schema, else a string).
    """

    items_per_prompt: int
    context_window_tokens: int = 128_000
    answer_schema: dict[str, Any] | None = None
    instruction: str = DEFAULT_INSTRUCTION

    def __post_init__(self) -> None:
        if self.items_per_prompt < 2:
            raise ValueError(f"Packing.items_per_prompt must be at least 2, got {self.items_per_prompt}")
        if self.context_window_tokens < 1:
            raise ValueError(
                f"Packing.context_window_tokens must be positive, got {self.context_window_tokens}"
            )


@dataclass(slots=True)
class Pack:
    """Items sharing one call: ``request`` is the packed call, ``keys[i]`` names ``items[i]`` in it."""

    items: list[BatchRequest]
    request: BatchRequest
    schema: dict[str, Any]
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Share:
    """One item's equal share of what its pack's call used and cost."""

    input_tokens: int
    output_tokens: int
    cost_usd: float | None


@dataclass(slots=True)
class Unpacked:
    """Per-item results parsed from a pack's answer, the items that need a single call, and each of those
    items' share of the pack (their row bears it on top of their own call, so rows add up to the spend)."""

    answered: list[BatchResult]
    fallback: list[BatchRequest]
    carried: dict[str, Share] = field(default_factory=dict)


def plan_packs(
    requests: Sequence[BatchRequest],
    packing: Packing,
    response_schema: dict[str, Any] | None,
    estimate_tokens: Callable[[BatchRequest], int],
) -> tuple[list[Pack], list[BatchRequest]]:
    """Group ``requests`` into packs of two or more; returns the packs and the items to send alone."""
    groups: dict[str, list[BatchRequest]] = {}
    singles: list[BatchRequest] = []
    for request in requests:
        key = _shape(request)
        if key is None:
            singles.append(request)
        else:
            groups.setdefault(key, []).append(request)
    answer_schema = packing.answer_schema or response_schema or {"type": "string"}
    packs: list[Pack] = []

    def close(members: list[BatchRequest]) -> None:
        if len(members) >= 2:
            packs.append(_pack(members, packing, answer_schema))
        else:
            singles.extend(members)

    for members in groups.values():
        current: list[BatchRequest] = []
        for request in members:
            candidate = [*current, request]
            too_many = len(candidate) > packing.items_per_prompt
            too_big = len(candidate) >= 2 and (
                estimate_tokens(_packed(candidate, packing, answer_schema)[0]) > packing.context_window_tokens
            )
            if too_many or too_big:
                close(current)
                current = [request]
            else:
                current = candidate
        close(current)
    return packs, singles


def unpack(pack: Pack, result: BatchResult, response_schema: dict[str, Any] | None) -> Unpacked:
    """Split the pack's result into one result per item; every item of the pack, answered or not, bears
    an equal share of its usage and cost."""
    shares = _shares(result, len(pack.items))
    answers = result.parsed if result.error is None else None
    if not isinstance(answers, dict):
        return Unpacked([], list(pack.items), _carried(pack.items, shares))
    validator = _validator(response_schema)
    answered: list[BatchResult] = []
    fallback: list[BatchRequest] = []
    fallback_shares: list[Share] = []
    for key, request, share in zip(pack.keys, pack.items, shares, strict=True):
        value = answers.get(key, _MISSING)
        if value is _MISSING or (
            validator is not None and next(iter(validator.iter_errors(value)), None) is not None
        ):
            fallback.append(request)
            fallback_shares.append(share)
            continue
        text = value if isinstance(value, str) and response_schema is None else json.dumps(value)
        answered.append(
            BatchResult(
                request.id,
                response=text,
                parsed=value if response_schema is not None else None,
                input_tokens=share.input_tokens,
                output_tokens=share.output_tokens,
                cost_usd=share.cost_usd,
                path=PACKED,
            )
        )
    return Unpacked(answered, fallback, _carried(fallback, fallback_shares))


_MISSING = object()


def _shares(result: BatchResult, parts: int) -> list[Share]:
    cost = None if result.cost_usd is None else result.cost_usd / parts
    return [
        Share(_share(result.input_tokens, parts, index), _share(result.output_tokens, parts, index), cost)
        for index in range(parts)
    ]


def _carried(items: Sequence[BatchRequest], shares: Sequence[Share]) -> dict[str, Share]:
    return {
        item.id: share
        for item, share in zip(items, shares, strict=True)
        if share.input_tokens or share.output_tokens
    }


def _shape(request: BatchRequest) -> str | None:
    """What items must share to be packed together; None when the request cannot be packed."""
    messages = request.messages or []
    if request.kind != "chat" or not messages:
        return None
    last = messages[-1]
    if last.get("role") != "user" or not isinstance(last.get("content"), str):
        return None
    return json.dumps(
        [request.system, messages[:-1], request.temperature, request.params], sort_keys=True, default=str
    )


def _packed(
    items: Sequence[BatchRequest], packing: Packing, answer_schema: dict[str, Any]
) -> tuple[BatchRequest, dict[str, Any], list[str]]:
    first = items[0]
    keys = [str(index + 1) for index in range(len(items))]
    listing = {
        key: str((item.messages or [{}])[-1].get("content")) for key, item in zip(keys, items, strict=True)
    }
    system = f"{first.system}\n\n{packing.instruction}" if first.system else packing.instruction
    max_tokens = [item.max_tokens for item in items]
    request = BatchRequest(
        id=f"pack-{first.id}",
        messages=[
            *(first.messages or [])[:-1],
            {"role": "user", "content": json.dumps(listing, ensure_ascii=False)},
        ],
        system=system,
        max_tokens=sum(t for t in max_tokens if t is not None)
        if all(t is not None for t in max_tokens)
        else None,
        temperature=first.temperature,
        params=dict(first.params),
    )
    schema = {
        "type": "object",
        "properties": {key: answer_schema for key in keys},
        "required": keys,
        "additionalProperties": False,
    }
    return request, schema, keys


def _pack(items: list[BatchRequest], packing: Packing, answer_schema: dict[str, Any]) -> Pack:
    request, schema, keys = _packed(items, packing, answer_schema)
    return Pack(items, request, schema, keys)


def _validator(schema: dict[str, Any] | None) -> Any:
    return None if schema is None else validator_for(schema, default=Draft202012Validator)(schema)


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)
