"""The emulator's ASGI application: every provider route, error rendering and per-endpoint counters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batch_pipelines.emulator.admin import AdminRoutes
from batch_pipelines.emulator.anthropic_batches import RESULTS_DOWNLOAD_PATH, MessageBatchRoutes
from batch_pipelines.emulator.bedrock_jobs import BedrockRoutes
from batch_pipelines.emulator.errors import ApiError, anthropic_response, new_request_id, openai_response
from batch_pipelines.emulator.lifecycle import Lifecycle
from batch_pipelines.emulator.openai_batches import BatchRoutes
from batch_pipelines.emulator.openai_files import FileRoutes
from batch_pipelines.emulator.realtime_gate import ConnectionDropped
from batch_pipelines.emulator.realtime_routes import RealtimeRoutes
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.wire import openai_key

Handler = Callable[[Request], Awaitable[Response]]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _provider_of(path: str) -> str:
    return "anthropic" if path.startswith("/v1/messages") else "openai"


class EmulatorApp:
    """Starlette routes behind a thin ASGI layer that hands handlers the server's own ``send``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        lifecycle = Lifecycle(runtime)
        files = FileRoutes(runtime)
        batches = BatchRoutes(runtime, lifecycle)
        message_batches = MessageBatchRoutes(runtime, lifecycle)
        realtime = RealtimeRoutes(runtime)
        admin = AdminRoutes(runtime)
        openai = self._openai
        anthropic = self._anthropic
        routes = [
            Route(
                "/v1/chat/completions",
                self._counted("openai", "chat.completions", realtime.chat_completions),
                methods=["POST"],
            ),
            Route(
                "/v1/embeddings", self._counted("openai", "embeddings", realtime.embeddings), methods=["POST"]
            ),
            Route("/v1/files", openai("files.create", files.upload), methods=["POST"]),
            Route("/v1/files", openai("files.list", files.list), methods=["GET"]),
            Route("/v1/files/{file_id}", openai("files.retrieve", files.retrieve), methods=["GET"]),
            Route("/v1/files/{file_id}", openai("files.delete", files.delete), methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", openai("files.content", files.content), methods=["GET"]),
            Route("/v1/batches", openai("batches.create", batches.create), methods=["POST"]),
            Route("/v1/batches", openai("batches.list", batches.list), methods=["GET"]),
            Route("/v1/batches/{batch_id}", openai("batches.retrieve", batches.retrieve), methods=["GET"]),
            Route(
                "/v1/batches/{batch_id}/cancel", openai("batches.cancel", batches.cancel), methods=["POST"]
            ),
            Route(
                "/v1/messages", self._counted("anthropic", "messages", realtime.messages), methods=["POST"]
            ),
            Route(
                "/v1/messages/batches",
                anthropic("message_batches.create", message_batches.create),
                methods=["POST"],
            ),
            Route(
                "/v1/messages/batches",
                anthropic("message_batches.list", message_batches.list),
                methods=["GET"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}",
                anthropic("message_batches.retrieve", message_batches.retrieve),
                methods=["GET"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}",
                anthropic("message_batches.delete", message_batches.delete),
                methods=["DELETE"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}/cancel",
                anthropic("message_batches.cancel", message_batches.cancel),
                methods=["POST"],
            ),
            Route(
                "/v1/messages/batches/{batch_id}/results",
                anthropic("message_batches.results", message_batches.results),
                methods=["GET"],
            ),
            # Where `results_url` points: a path of its own, so a client that builds the URL itself
            # instead of following the batch's results_url shows in the counters.
            Route(
                RESULTS_DOWNLOAD_PATH,
                anthropic("message_batches.results_download", message_batches.results),
                methods=["GET"],
            ),
            *BedrockRoutes(runtime).routes(),
            Route("/_emulator/health", admin.health, methods=["GET"]),
            Route("/_emulator/config", admin.get_config, methods=["GET"]),
            Route("/_emulator/config", self._admin(admin.patch_config), methods=["POST", "PATCH", "PUT"]),
            Route("/_emulator/scenarios", admin.list_scenarios, methods=["GET"]),
            Route("/_emulator/scenarios", self._admin(admin.queue_scenario), methods=["POST"]),
            Route("/_emulator/scenarios", admin.clear_scenarios, methods=["DELETE"]),
            Route("/_emulator/batches/{batch_id}", self._admin(admin.forget_batch), methods=["DELETE"]),
            Route("/_emulator/stats", admin.stats, methods=["GET"]),
            Route("/_emulator/stats", admin.reset_stats, methods=["DELETE"]),
        ]
        self.starlette = Starlette(
            routes=routes, exception_handlers={404: self._no_route, 405: self._no_route}
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["emulator.send"] = send
        await self.starlette(scope, receive, send)

    def _counted(self, provider: str, name: str, handler: Handler) -> Handler:
        render = openai_response if provider == "openai" else anthropic_response
        counters = self.runtime.counters
        request_id_header = "x-request-id" if provider == "openai" else "request-id"

        async def endpoint(request: Request) -> Response:
            counters[f"requests.{name}"] += 1
            if provider == "anthropic" and (version := request.headers.get("anthropic-version")):
                counters[f"anthropic_version.{version}"] += 1
            try:
                response = await handler(request)
            except ApiError as error:
                response = render(error)
            except ConnectionDropped:
                return Response(status_code=499)
            counters[f"status.{response.status_code}"] += 1
            response.headers[request_id_header] = new_request_id()
            return response

        return endpoint

    def _openai(self, name: str, handler: Handler) -> Handler:
        runtime = self.runtime

        async def authenticated(request: Request) -> Response:
            openai_key(request, runtime.config.api_keys)
            return await handler(request)

        return self._counted("openai", name, authenticated)

    def _anthropic(self, name: str, handler: Handler) -> Handler:
        return self._counted("anthropic", name, handler)

    def _admin(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as error:
                return openai_response(error)

        return endpoint

    async def _no_route(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = f"Invalid URL ({request.method} {request.url.path})"
        error = (
            ApiError(status, message) if status == 404 else ApiError(405, f"Method not allowed: {message}")
        )
        return (
            openai_response(error)
            if _provider_of(request.url.path) == "openai"
            else anthropic_response(error)
        )


def build_app(runtime: Runtime) -> ASGIApp:
    return EmulatorApp(runtime)
