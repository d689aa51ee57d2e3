"""`batch-pipelines submit` with a gpt-5 model: the OpenAI batch lines a user already has (max_tokens)
complete with every line succeeded; a temperature the model refuses is named before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.console.test_job_commands import (
    cli_env,
    openai_lines,
    run_cli,
    run_json,
    wait_until_ended,
)

__all__ = ["cli_env"]  # the fixture, shared with the other job-command tests


def test_a_gpt_5_mini_batch_submitted_from_the_shell_succeeds_line_by_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests_file = cli_env / "gpt5.jsonl"
    requests_file.write_text(openai_lines(6, "gpt-5-mini"))
    submitted = run_json(capsys, "submit", str(requests_file))
    assert submitted["model"] == "gpt-5-mini" and submitted["total"] == 6
    finished = wait_until_ended(capsys, submitted["id"])
    assert finished["status"] == "completed"
    results = run_json(capsys, "results", submitted["id"])
    assert len(results) == 6 and all(r["ok"] and r["response"] for r in results), results


def test_a_temperature_gpt_5_refuses_is_reported_before_upload(
    cli_env: Path, capsys: pytest.CaptureFixture[str], emulator: EmulatorProcess
) -> None:
    requests_file = cli_env / "cold.jsonl"
    requests_file.write_text(openai_lines(2, "gpt-5-mini", temperature=0))
    code, _, err = run_cli(capsys, "submit", str(requests_file))
    assert code == 1 and "'q0'" in err and "temperature" in err and "Traceback" not in err
    assert emulator.stats()["files"] == 0
