"""The job commands from the shell's side: submit a JSONL file, follow it with `status`, read `results`,
`cancel`, `retry` and `cost`, against the emulator and a real store under the working folder."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from batch_pipelines.cli import main
from batch_pipelines.emulator.process import EmulatorProcess

SECRET = "sk-cli-secret-value"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorProcess, tmp_path: Path) -> Path:
    monkeypatch.setenv("BATCH_PIPELINES_API_KEY", SECRET)
    monkeypatch.setenv("BATCH_PIPELINES_BASE_URL", emulator.openai_base_url)
    monkeypatch.setenv("BATCH_PIPELINES_HOME", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def openai_lines(count: int, model: str = "gpt-4o-mini", **body: object) -> str:
    return "".join(
        json.dumps(
            {
                "custom_id": f"q{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": model,
                    "messages": [{"role": "user", "content": f"Say something about {i}"}],
                    "max_tokens": 20,
                    **body,
                },
            }
        )
        + "\n"
        for i in range(count)
    )


def wait_until_ended(capsys: pytest.CaptureFixture[str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        [job] = [j for j in run_json(capsys, "status", "--all", "--refresh") if j["id"] == job_id]
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_submit_status_results_and_cost(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requests_file = cli_env / "requests.jsonl"
    requests_file.write_text(openai_lines(5))
    submitted = run_json(capsys, "submit", str(requests_file), "--pipeline", "adhoc", "--partition", "p1")
    assert submitted["total"] == 5 and submitted["model"] == "gpt-4o-mini"
    assert submitted["estimated_usd"] > 0 and submitted["worst_case_usd"] == submitted["estimated_usd"]
    assert 0 < submitted["expected_usd"] < submitted["worst_case_usd"]
    assert submitted["forecast_basis"].startswith("no history: 50 % of max_tokens")

    code, table, _ = run_cli(capsys, "status")
    assert code == 0 and submitted["id"] in table and "items/h" in table and "cost so far" in table

    finished = wait_until_ended(capsys, submitted["id"])
    assert finished["status"] == "completed" and finished["percent"] == 100.0
    assert finished["eta_seconds"] == 0.0 and finished["items_per_hour"] > 0

    results = run_json(capsys, "results", submitted["id"])
    assert [r["id"] for r in results] == [f"q{i}" for i in range(5)]
    assert all(r["ok"] and r["response"] and r["cost_usd"] > 0 for r in results)
    code, table, _ = run_cli(capsys, "results", submitted["id"])
    assert code == 0 and "q4" in table

    [spend] = run_json(capsys, "cost")
    assert (spend["pipeline"], spend["partition_key"], spend["model"]) == (
        "adhoc",
        "p1",
        "openai/gpt-4o-mini",
    )
    assert spend["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in results))
    assert spend["discount_pct"] == pytest.approx(50.0)
    assert spend["expected_usd"] == pytest.approx(submitted["expected_usd"], abs=1e-8)  # rounded to 8
    assert spend["worst_case_usd"] == pytest.approx(submitted["worst_case_usd"], abs=1e-8)
    assert spend["worst_case_usd"] >= spend["cost_usd"]
    assert spend["worst_case_error_pct"] == pytest.approx(
        100 * (spend["worst_case_usd"] - spend["cost_usd"]) / spend["cost_usd"], abs=0.1
    )
    code, table, _ = run_cli(capsys, "cost")
    assert code == 0 and "Forecast vs billed, per job" in table and submitted["id"] in table
    code, table, _ = run_cli(capsys, "cost", "--by", "model")
    assert code == 0 and "TOTAL" in table and "openai/gpt-4o-mini" in table

    code, _, err = run_cli(capsys, "cost", "--by", "colour")
    assert code == 1 and "--by 'colour'" in err


def test_cancel_and_retry_mirror_the_api(
    cli_env: Path, capsys: pytest.CaptureFixture[str], emulator: EmulatorProcess
) -> None:
    simple = cli_env / "simple.jsonl"
    simple.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
            + "\n"
            for i in range(4)
        )
    )
    emulator.configure({"lifecycle": {"validating_s": 500}})  # 10 s at the test time scale
    job = run_json(capsys, "submit", str(simple), "--model", "gpt-4o-mini", "--job-id", "to-cancel")
    cancelled = run_json(capsys, "cancel", job["id"])
    assert cancelled["status"] == "cancelled"
    ended = wait_until_ended(capsys, "to-cancel")
    assert ended["detail"] == "cancelled"

    emulator.configure({"lifecycle": {"validating_s": 0.1}})
    retried = run_json(capsys, "retry", "to-cancel")  # the cancelled requests are transient failures
    assert retried["attempt"] == 2
    assert wait_until_ended(capsys, "to-cancel")["status"] == "completed"


def test_bad_input_and_budget_are_reported_clearly(
    cli_env: Path, capsys: pytest.CaptureFixture[str], emulator: EmulatorProcess
) -> None:
    broken = cli_env / "broken.jsonl"
    broken.write_text(openai_lines(1) + '{"id": "x", "messages": []}\n')
    code, _, err = run_cli(capsys, "submit", str(broken))
    assert code == 1 and f"{broken}:2" in err and "messages" in err

    requests_file = cli_env / "requests.jsonl"
    requests_file.write_text(openai_lines(50))
    code, _, err = run_cli(capsys, "submit", str(requests_file), "--max-cost-usd", "0.0000001")
    assert code == 1 and "exceeds the budget" in err
    assert emulator.stats()["files"] == 0

    code, _, err = run_cli(capsys, "status", "--workdir", str(cli_env / "elsewhere"))
    assert code == 1 and "no batch store" in err


def test_the_key_never_reaches_the_output(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    requests_file = cli_env / "requests.jsonl"
    requests_file.write_text(openai_lines(2))
    monkeypatch.delenv("BATCH_PIPELINES_API_KEY")
    code, out, err = run_cli(capsys, "submit", str(requests_file))
    assert code == 1 and "$BATCH_PIPELINES_API_KEY" in err
    monkeypatch.setenv("MY_KEY", SECRET)
    code, out, err = run_cli(capsys, "submit", str(requests_file), "--api-key-env", "MY_KEY")
    assert code == 0 and SECRET not in out + err
    assert "Cost forecast:" in out and "worst case $" in out and "no history: 50 % of max_tokens" in out


def test_status_watch_follows_jobs_until_they_end(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requests_file = cli_env / "requests.jsonl"
    requests_file.write_text(openai_lines(3))
    job = run_json(capsys, "submit", str(requests_file))
    code, out, _ = run_cli(capsys, "status", "--watch", "--refresh", "--interval", "0.1")
    assert code == 0 and job["id"] in out
    [final] = run_json(capsys, "status", "--all")
    assert final["status"] == "completed"


def test_a_submit_that_fails_before_launch_names_the_job_and_the_same_command_resumes_it(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    emulator: EmulatorProcess,
) -> None:
    requests_file = cli_env / "requests.jsonl"
    requests_file.write_text(openai_lines(5))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    monkeypatch.setenv("BATCH_PIPELINES_BASE_URL", dead)
    code, out, err = run_cli(capsys, "submit", str(requests_file))
    assert code == 1 and "Traceback" not in out + err
    [job_id] = re.findall(r"job (job-[0-9a-f]{32}) is recorded", err)
    assert "run the same command again" in err and f"--job-id {job_id}" in err

    monkeypatch.setenv("BATCH_PIPELINES_BASE_URL", emulator.openai_base_url)
    code, out, err = run_cli(capsys, "submit", str(requests_file), "--json")
    assert code == 0 and json.loads(out)["id"] == job_id
    assert f"job {job_id} was submitted before from this file: resumed it" in err
    assert [job["id"] for job in run_json(capsys, "status", "--all", "--refresh")] == [job_id]
    assert wait_until_ended(capsys, job_id)["status"] == "completed"
    assert run_json(capsys, "submit", str(requests_file))["id"] == job_id  # once more: still that job

    sent = emulator.stats()
    assert sent["batches_created"]["openai"] == 1
    assert sent["requests_by_endpoint"]["files.create"] == 1
    results = run_json(capsys, "results", job_id)
    assert sorted(r["id"] for r in results) == [f"q{i}" for i in range(5)] and all(r["ok"] for r in results)
