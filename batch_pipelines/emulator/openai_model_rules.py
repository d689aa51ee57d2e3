"""The chat parameters OpenAI's models refuse, as the API documents and answers them.

Written from the API's behaviour, not from the provider client: reasoning models (the gpt-5 family and
the o1, o3 and o4 series) answer ``max_tokens`` with ``400 unsupported_parameter`` (they take
``max_completion_tokens``), and a ``temperature`` or ``top_p`` other than the default 1 with
``400 unsupported_value``. Other chat models answer ``reasoning_effort`` with ``unsupported_parameter``.
"""

from __future__ import annotations

import re
from typing import Any

from batch_pipelines.emulator.errors import ApiError

_REASONING = re.compile(r"^(?:ft:)?(?:gpt-5(?:[.-].*)?|o[134](?:-.*)?)$")


def takes_reasoning_parameters(model: str) -> bool:
    return _REASONING.match(model) is not None


def _unsupported_parameter(name: str, hint: str = "") -> ApiError:
    return ApiError(
        400,
        f"Unsupported parameter: '{name}' is not supported with this model.{hint}",
        param=name,
        code="unsupported_parameter",
    )


def check_model_parameters(model: str, body: dict[str, Any]) -> None:
    """Raise the 400 the API gives ``body`` for ``model``; nothing when the model takes every parameter."""
    if not takes_reasoning_parameters(model):
        if body.get("reasoning_effort") is not None:
            raise _unsupported_parameter("reasoning_effort")
        return
    if body.get("max_tokens") is not None:
        raise _unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and value != 1:
            raise ApiError(
                400,
                f"Unsupported value: '{name}' does not support {value} with this model. Only the default "
                "(1) value is supported.",
                param=name,
                code="unsupported_value",
            )
