"""What makes a request well formed, checked before anything is uploaded.

`check_request_shape` runs for every BatchRequest (so it stays a handful of type checks): a wrong type
would otherwise end in a traceback deep in token estimation or rendering. `message_problem` adds the
rules a provider applies to each message (a known role, some content); it checks requests a user wrote
by hand (`batch-pipelines submit`), where a typo would otherwise cost a round trip to the provider.
"""

from __future__ import annotations

from typing import Any

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_request_shape(
    request_id: Any, messages: Any, max_tokens: Any, temperature: Any, text_input: Any
) -> None:
    """Raise ValueError naming the field when a request field has the wrong type."""
    if not isinstance(request_id, str) or not request_id:
        raise ValueError(f"'id' must be a non-empty string, got {request_id!r}")
    if messages is not None:
        if not isinstance(messages, list):
            raise ValueError(
                f"request {request_id!r}: 'messages' must be a list of {{role, content}} objects, "
                f"got a {_kind_of(messages)}"
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise ValueError(
                    f"request {request_id!r}: 'messages[{index}]' must be an object with 'role' and "
                    f"'content', got a {_kind_of(message)}"
                )
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ValueError(
            f"request {request_id!r}: 'max_tokens' must be a positive integer, got {max_tokens!r}"
        )
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool)
    ):
        raise ValueError(f"request {request_id!r}: 'temperature' must be a number, got {temperature!r}")
    if text_input is not None and not isinstance(text_input, str):
        raise ValueError(f"request {request_id!r}: 'input' must be text, got a {_kind_of(text_input)}")


def message_problem(messages: list[dict[str, Any]]) -> str | None:
    """Why a provider would refuse these messages (a field path and what is expected), or None."""
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in CHAT_ROLES:
            return f"messages[{index}].role is {role!r}; expected one of {', '.join(CHAT_ROLES)}"
        content = message.get("content")
        if role == "assistant" and content is None and message.get("tool_calls"):
            continue
        if content is None or content == "" or content == []:
            return f"messages[{index}] ({role}) has no content; expected non-empty text or content parts"
        if not isinstance(content, str | list):
            return f"messages[{index}].content must be text or a list of parts, got a {_kind_of(content)}"
    return None
