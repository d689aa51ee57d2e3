"""The per-message rules each API applies to a chat request, answered with the API's own 400.

OpenAI: a role outside its list is `invalid_value` on `messages[i].role`; a message without content
(an assistant message with tool calls excepted) is `missing_required_parameter` on
`messages[i].content`. Anthropic: only `user` and `assistant` roles, and every message needs non-empty
content. In a batch the 400 is that line's answer; the other lines are answered as usual.
"""

from __future__ import annotations

from typing import Any

from batch_pipelines.emulator.errors import ApiError, invalid

OPENAI_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
ANTHROPIC_ROLES = ("user", "assistant")


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def check_openai_messages(messages: list[dict[str, Any]]) -> None:
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in OPENAI_ROLES:
            raise invalid(
                f"Invalid value: {role!r}. Supported values are: {_listed(OPENAI_ROLES)}.",
                param=f"messages[{index}].role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise invalid(
                f"Missing required parameter: 'messages[{index}].content'.",
                param=f"messages[{index}].content",
                code="missing_required_parameter",
            )


def check_anthropic_messages(messages: list[Any]) -> None:
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages.{index}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ANTHROPIC_ROLES:
            raise ApiError(
                400, f"messages.{index}.role: Input should be 'user' or 'assistant' (got {role!r})"
            )
        final_assistant = role == "assistant" and index == len(messages) - 1
        if not message.get("content") and not final_assistant:
            raise ApiError(
                400,
                f"messages.{index}: all messages must have non-empty content except for the optional "
                "final assistant message",
            )
