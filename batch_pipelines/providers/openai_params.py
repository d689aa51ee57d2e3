"""Which chat parameters each OpenAI model family takes.

Reasoning models (``gpt-5*``, ``o1*``, ``o3*``, ``o4*``) cap output with ``max_completion_tokens`` and
answer ``400 unsupported_parameter`` to ``max_tokens``; they accept ``temperature`` and ``top_p`` only at
their default of 1 (``400 unsupported_value`` otherwise) and take ``reasoning_effort``. Older chat models
(``gpt-4o``, ``gpt-4.1``, …) keep ``max_tokens`` and sampling, and have no ``reasoning_effort``.
"""

from __future__ import annotations

from typing import Any

REASONING_FAMILIES = ("gpt-5", "o1", "o3", "o4")
FIXED_SAMPLING = ("temperature", "top_p")


def is_reasoning_model(model: str) -> bool:
    """``gpt-5-mini``, ``o4-mini-2025-04-16``, a fine-tune ``ft:o4-mini:…``; not ``gpt-4o`` or ``o``."""
    name = model.removeprefix("ft:")
    return any(name == family or name.startswith(family + "-") for family in REASONING_FAMILIES) or (
        name.startswith("gpt-5.")
    )


def conform_chat_body(model: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
    """``body`` with the output cap under the name ``model`` takes; ValueError naming the request and the
    field for a value that model refuses (rather than a 400 for every line of a batch)."""
    if not is_reasoning_model(model):
        if "reasoning_effort" in body:
            raise ValueError(
                f"request {request_id!r}: {model} takes no reasoning_effort (only gpt-5 and o-series "
                "models do); remove it"
            )
        return body
    if "max_tokens" in body:
        cap = body.pop("max_tokens")
        body.setdefault("max_completion_tokens", cap)
    for name in FIXED_SAMPLING:
        value = body.get(name)
        if value is not None and value != 1:
            raise ValueError(
                f"request {request_id!r}: {model} accepts {name} only at its default of 1, got {value!r}; "
                f"remove {name} for this model"
            )
    return body
