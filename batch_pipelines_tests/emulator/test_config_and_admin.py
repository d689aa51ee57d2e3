"""Emulator settings (file, flags, runtime patches), the admin API, and the pieces answers are built from."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from batch_pipelines.emulator.config import ConfigError, EmulatorConfig, config_from_dict, load_config_file
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.emulator.schema_instance import instance_for_schema
from batch_pipelines.emulator.wire import go_duration
from batch_pipelines_tests.emulator.helpers import chat_line, parse_jsonl, upload, wait_for_batch


def test_config_rejects_unknown_keys_and_bad_values_naming_them() -> None:
    with pytest.raises(ConfigError, match="lifecycle: unknown key"):
        config_from_dict({"lifecycle": {"validating_seconds": 1}})
    with pytest.raises(ConfigError, match=r"rate_limits\.rpm: expected an integer"):
        config_from_dict({"rate_limits": {"rpm": 1.5}})
    with pytest.raises(ConfigError, match="unknown fault 'gremlins'"):
        config_from_dict({"faults": {"batch_error_rates": {"gremlins": 0.1}}})
    with pytest.raises(ConfigError, match="time_scale"):
        config_from_dict({"time_scale": 0})


def test_patches_deep_merge_and_per_key_limits_override() -> None:
    config = EmulatorConfig().patched({"rate_limits": {"rpm": 10, "per_key": {"sk-a": {"tpm": 99}}}})
    patched = config.patched({"rate_limits": {"tpm": 1000}})
    assert (patched.rate_limits.rpm, patched.rate_limits.tpm) == (10, 1000)
    assert patched.rate_limits.for_key("sk-a").tpm == 99
    assert patched.rate_limits.for_key("sk-a").rpm == 10
    assert patched.rate_limits.for_key("sk-other").tpm == 1000


def test_yaml_config_file_and_flags_reach_the_process(tmp_path: Path) -> None:
    config_file = tmp_path / "emulator.yaml"
    config_file.write_text("seed: 5\nlimits:\n  openai_max_requests: 3\nfaults:\n  slow_response_s: 0.5\n")
    assert load_config_file(config_file)["limits"] == {"openai_max_requests": 3}
    with EmulatorProcess(config_file, rpm=7, time_scale=0.5, api_keys=["sk-a", "sk-b"]) as emulator:
        live = httpx.get(f"{emulator.url}/_emulator/config").json()
    assert live["seed"] == 5 and live["limits"]["openai_max_requests"] == 3
    assert live["rate_limits"]["rpm"] == 7 and live["time_scale"] == 0.5
    assert live["api_keys"] == ["********", "********"]


def test_keys_reach_the_emulator_through_the_environment_and_never_come_back() -> None:
    secret = "sk-never-shown-0123456789"
    with EmulatorProcess(time_scale=0.5, api_keys=[secret]) as emulator:
        assert emulator._process is not None
        command_line = Path(f"/proc/{emulator._process.pid}/cmdline").read_bytes()
        assert secret.encode() not in command_line  # what `ps` shows every user of the machine
        admin = f"{emulator.url}/_emulator/config"
        patch = {"rate_limits": {"per_key": {secret: {"rpm": 5}}}}
        answers = [httpx.get(admin).text, httpx.patch(admin, json=patch).text, httpx.get(admin).text]
        assert all(secret not in answer for answer in answers)
        shown = httpx.get(admin).json()
        assert shown["api_keys"] == ["********"]
        assert shown["rate_limits"]["per_key"] == {"******** (key 1)": {"rpm": 5, "tpm": None}}
        # A config read back and sent again keeps the keys it masked.
        assert httpx.put(admin, json=shown).status_code == 200
        models = f"{emulator.openai_base_url}/files"
        assert httpx.get(models, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        assert httpx.get(models, headers={"Authorization": "Bearer sk-other"}).status_code == 401
        assert "(key 1)" in httpx.get(admin).text


def test_the_emulator_ends_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from batch_pipelines.emulator.process import EmulatorProcess\n"
            "emulator = EmulatorProcess(time_scale=0.5).start()\n"
            "print(emulator._process.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no cleanup code of the parent runs
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running and not a zombie (the emulator's parent is gone, so init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_cli_prints_one_ready_line_and_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nonsense": True}))
    failed = subprocess.run(
        [sys.executable, "-m", "batch_pipelines.emulator", "--port", "0", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 2
    assert "unknown key(s) nonsense" in failed.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "batch_pipelines.cli", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Emulator listening on http://127.0.0.1:")
        assert httpx.get(f"{line.split()[-1]}/_emulator/health").json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(10)


def test_admin_api_switches_behaviour_without_restart(emulator: EmulatorProcess) -> None:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)
    rejected = httpx.post(f"{emulator.url}/_emulator/config", json={"lifecycle": {"nope": 1}})
    assert rejected.status_code == 400 and "nope" in rejected.json()["error"]["message"]
    unknown = httpx.post(f"{emulator.url}/_emulator/scenarios", json={"name": "meteor"})
    assert unknown.status_code == 400

    emulator.configure({"faults": {"realtime_error_rates": {"server_error": 1.0}}})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    emulator.configure({"faults": {"realtime_error_rates": {"server_error": 0.0}}})
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices

    emulator.queue_scenario("expire_all", provider="anthropic", count=2)
    queued = httpx.get(f"{emulator.url}/_emulator/scenarios").json()["queued"]
    assert queued == [{"name": "expire_all", "provider": "anthropic"}] * 2
    stats = emulator.stats()
    assert stats["requests_by_endpoint"]["chat.completions"] == 2
    assert stats["faults_injected"] == {"server_error": 1}
    assert stats["batches_created"] == {"openai": 0, "anthropic": 0}


def test_seeded_batch_error_rates_are_reproducible() -> None:
    def failed_ids(seed: int) -> set[str]:
        with EmulatorProcess(
            {"faults": {"batch_error_rates": {"server_error": 0.3}}}, time_scale=0.02, seed=seed
        ) as emulator:
            client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0)
            batch = client.batches.create(
                input_file_id=upload(client, [chat_line(f"s{i}", f"q{i}") for i in range(40)]),
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )
            done = wait_for_batch(client, batch.id)
            return {line["custom_id"] for line in parse_jsonl(client.files.content(done.error_file_id).text)}

    first, again, other = failed_ids(11), failed_ids(11), failed_ids(12)
    assert first == again
    assert 4 <= len(first) <= 24
    assert first != other


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.012, "12ms"), (0.9994, "999ms"), (1.5, "1.5s"), (360, "6m0s"), (3723, "1h2m3s")],
)
def test_durations_are_written_like_openais_headers(seconds: float, expected: str) -> None:
    assert go_duration(seconds) == expected


def test_schema_instances_validate_for_nested_refs_and_unions() -> None:
    schema = {
        "$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string", "minLength": 8}}}},
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2, "maxItems": 2},
            "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 3}]},
            "score": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
            "kind": {"const": "order"},
            "ratio": {"type": ["number", "null"], "minimum": 0.5, "maximum": 0.6},
        },
        "required": ["items", "note", "score", "kind", "ratio"],
        "additionalProperties": False,
    }
    for seed in ("a", "b", "c"):
        value = instance_for_schema(schema, seed)
        jsonschema.validate(value, schema)
    assert instance_for_schema(schema, "a") == instance_for_schema(schema, "a")
