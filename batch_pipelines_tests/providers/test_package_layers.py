"""The provider clients and the engine meet only in batch_pipelines.wire: no import cycle between them."""

from __future__ import annotations

import json
import subprocess
import sys

PROVIDER_MODULES = [
    "batch_pipelines.providers",
    "batch_pipelines.providers.openai_realtime",
    "batch_pipelines.providers.anthropic_realtime",
    "batch_pipelines.providers.bedrock",
]


def _loaded_after_import(modules: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('batch_pipelines'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


def test_provider_clients_load_without_the_engine() -> None:
    loaded = _loaded_after_import(PROVIDER_MODULES)
    assert "batch_pipelines.wire.provider" in loaded
    assert not [m for m in loaded if m.startswith("batch_pipelines.engine")]


def test_the_shared_types_import_neither_side() -> None:
    loaded = _loaded_after_import(["batch_pipelines.wire.provider", "batch_pipelines.wire.errors"])
    assert not [m for m in loaded if m.startswith(("batch_pipelines.engine", "batch_pipelines.providers"))]


def test_the_engine_loads_no_provider_client() -> None:
    loaded = _loaded_after_import(["batch_pipelines.engine"])
    assert not [m for m in loaded if m.startswith("batch_pipelines.providers")]
