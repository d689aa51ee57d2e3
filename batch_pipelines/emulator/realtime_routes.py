"""Synchronous model endpoints: OpenAI chat completions and embeddings, Anthropic messages."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from batch_pipelines.emulator.errors import ApiError
from batch_pipelines.emulator.model import (
    anthropic_message,
    count_tokens,
    openai_chat_completion,
    openai_embeddings,
    prompt_tokens,
)
from batch_pipelines.emulator.realtime_gate import RealtimeGate
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.wire import anthropic_key, openai_key, parse_json_object


def _json(payload: object, headers: dict[str, str]) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")), media_type="application/json", headers=headers
    )


class RealtimeRoutes:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.gate = RealtimeGate(runtime)

    def _estimate(self, body: dict[str, object], max_tokens: object) -> int:
        """Tokens a request reserves against TPM: its prompt plus the output it may produce."""
        settings = self.runtime.config.model
        messages = body.get("messages")
        prompt = prompt_tokens(messages, settings.chars_per_token) if isinstance(messages, list) else 0
        output = max_tokens if isinstance(max_tokens, int) else settings.reply_tokens
        return prompt + output

    async def chat_completions(self, request: Request) -> Response:
        key = openai_key(request, self.runtime.config.api_keys)
        raw = await request.body()
        body = parse_json_object(raw)
        model = str(body.get("model", ""))
        tokens = self._estimate(body, body.get("max_completion_tokens") or body.get("max_tokens"))
        headers = await self.gate.admit(
            "openai", key, model, tokens, raw.decode(errors="replace"), request.scope["emulator.send"]
        )
        settings = self.runtime.config.model
        cache = self.runtime.prompt_cache
        answer = openai_chat_completion(body, settings.chars_per_token, settings.reply_tokens, cache)
        self.runtime.bill("openai", "realtime", [answer])
        return _json(answer, headers)

    async def embeddings(self, request: Request) -> Response:
        key = openai_key(request, self.runtime.config.api_keys)
        raw = await request.body()
        body = parse_json_object(raw)
        model = str(body.get("model", ""))
        tokens = count_tokens(json.dumps(body.get("input", "")), self.runtime.config.model.chars_per_token)
        headers = await self.gate.admit(
            "openai", key, model, tokens, raw.decode(errors="replace"), request.scope["emulator.send"]
        )
        settings = self.runtime.config.model
        answer = openai_embeddings(body, settings.chars_per_token, settings.embedding_dimensions)
        self.runtime.bill("openai", "realtime", [answer])
        return _json(answer, headers)

    async def messages(self, request: Request) -> Response:
        key = anthropic_key(request, self.runtime.config.api_keys)
        raw = await request.body()
        try:
            body = parse_json_object(raw)
        except ApiError as error:
            raise ApiError(400, "The request body is not valid JSON.") from error
        model = str(body.get("model", ""))
        tokens = self._estimate(body, body.get("max_tokens"))
        headers = await self.gate.admit(
            "anthropic", key, model, tokens, raw.decode(errors="replace"), request.scope["emulator.send"]
        )
        settings = self.runtime.config.model
        cache = self.runtime.prompt_cache
        answer = anthropic_message(body, settings.chars_per_token, settings.reply_tokens, cache)
        self.runtime.bill("anthropic", "realtime", [answer])
        return _json(answer, headers)
