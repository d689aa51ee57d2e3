"""The ``/_emulator/`` admin API: change faults and limits, queue scenarios, read counters.

No authentication: the emulator binds the loopback interface.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batch_pipelines.emulator.config import ConfigError, EmulatorConfig, config_from_dict
from batch_pipelines.emulator.errors import ApiError, invalid
from batch_pipelines.emulator.runtime import SCENARIOS, QueuedScenario, Runtime
from batch_pipelines.emulator.wire import parse_json_object

# What the config shows for an API key: the admin API has no authentication, so keys never leave.
HIDDEN_KEY = "********"


def public_config(config: EmulatorConfig) -> dict[str, Any]:
    """The config as the admin API shows it: accepted keys masked, per-key limits under masked names."""
    data = config.to_dict()
    data["api_keys"] = [HIDDEN_KEY for _ in config.api_keys]
    limits = data["rate_limits"]["per_key"]
    data["rate_limits"]["per_key"] = {_masked(n): value for n, value in enumerate(limits.values(), 1)}
    return data


def unmasked(body: dict[str, Any], config: EmulatorConfig) -> dict[str, Any]:
    """A config body as sent back after reading it: masked keys become the keys they stand for."""
    if body.get("api_keys") == [HIDDEN_KEY for _ in config.api_keys]:
        body["api_keys"] = list(config.api_keys)
    per_key = (body.get("rate_limits") or {}).get("per_key")
    if isinstance(per_key, dict):
        real = {_masked(n): key for n, key in enumerate(config.rate_limits.per_key, 1)}
        body["rate_limits"]["per_key"] = {real.get(name, name): value for name, value in per_key.items()}
    return body


def _masked(number: int) -> str:
    return f"{HIDDEN_KEY} (key {number})"


class AdminRoutes:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(public_config(self.runtime.config))

    async def patch_config(self, request: Request) -> Response:
        """POST/PATCH deep-merge the body into the config; PUT replaces it (missing keys take defaults)."""
        body = unmasked(parse_json_object(await request.body()), self.runtime.config)
        try:
            config = config_from_dict(body) if request.method == "PUT" else self.runtime.config.patched(body)
        except ConfigError as error:
            raise invalid(f"Invalid emulator config: {error}") from error
        self.runtime.replace_config(config)
        return JSONResponse(public_config(config))

    async def queue_scenario(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        name = body.get("name")
        provider = body.get("provider")
        count = body.get("count", 1)
        if name not in SCENARIOS:
            raise invalid(f"Unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}.", param="name")
        if provider not in (None, "openai", "anthropic", "bedrock"):
            raise invalid("'provider' must be 'openai', 'anthropic', 'bedrock' or absent.", param="provider")
        if not isinstance(count, int) or count < 1:
            raise invalid("'count' must be a positive integer.", param="count")
        self.runtime.scenarios.extend(QueuedScenario(name, provider) for _ in range(count))
        return self._scenarios()

    async def list_scenarios(self, request: Request) -> Response:
        return self._scenarios()

    async def clear_scenarios(self, request: Request) -> Response:
        self.runtime.scenarios.clear()
        return self._scenarios()

    def _scenarios(self) -> Response:
        queued = [{"name": s.name, "provider": s.provider} for s in self.runtime.scenarios]
        return JSONResponse({"queued": queued, "available": list(SCENARIOS)})

    async def stats(self, request: Request) -> Response:
        counters = self.runtime.counters
        requests = {
            key[len("requests.") :]: value for key, value in counters.items() if key.startswith("requests.")
        }
        statuses = {
            key[len("status.") :]: value for key, value in counters.items() if key.startswith("status.")
        }
        return JSONResponse(
            {
                "requests_served": sum(requests.values()),
                "requests_by_endpoint": requests,
                "responses_by_status": statuses,
                "rate_limited_429": counters["rate_limited_429"],
                "dropped_connections": counters["faults.drop_connection"],
                "faults_injected": {
                    k[len("faults.") :]: v for k, v in counters.items() if k.startswith("faults.")
                },
                "batches_created": {
                    provider: counters[f"batches_created.{provider}"] for provider in ("openai", "anthropic")
                },
                "batches_ended": {
                    k[len("batches_") :]: v
                    for k, v in counters.items()
                    if k.startswith("batches_") and not k.startswith("batches_created")
                },
                "files": len(self.runtime.store.files),
                "batches": len(self.runtime.store.batches),
                "billed": self.runtime.billed(),
                "anthropic_versions": {
                    k[len("anthropic_version.") :]: v
                    for k, v in counters.items()
                    if k.startswith("anthropic_version.")
                },
                "message_batches_created_without_content_length": counters[
                    "message_batches.create.without_content_length"
                ],
            }
        )

    async def forget_batch(self, request: Request) -> Response:
        """Forget a batch and its result files, as a provider does past its retention period: retrieving
        it answers 404 from now on."""
        batch_id = request.path_params["batch_id"]
        store = self.runtime.store
        batch = store.batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                store.delete_file(file_id)
        store.delete_batch(batch_id)
        return JSONResponse({"id": batch_id, "deleted": True})

    async def reset_stats(self, request: Request) -> Response:
        self.runtime.counters.clear()
        return JSONResponse({"reset": True})


def unknown_route_error(path: str) -> ApiError:
    return ApiError(404, f"Invalid URL (no route for {path}).")
