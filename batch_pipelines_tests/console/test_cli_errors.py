"""Bad input to the commands ends in one line naming the file and line (or field, or path) and what is
expected, with a non-zero exit status and no traceback; `--debug` shows the traceback. Run as a user
runs them: the installed module in a subprocess."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.cli_process import run_cli

GOOD = {"id": "fine", "messages": [{"role": "user", "content": "hello"}]}


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*argv, env={"BATCH_PIPELINES_API_KEY": "sk-test", "COLUMNS": "250", **(env or {})})


def one_error_line(answer: subprocess.CompletedProcess[str]) -> str:
    assert answer.returncode != 0
    assert "Traceback" not in answer.stderr
    [line] = answer.stderr.splitlines()
    return line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {"id": "a", "messages": "hi"},
            "request 'a': 'messages' must be a list of {role, content} objects, got a str",
        ),
        (
            {"id": "a", "messages": {"role": "user", "content": "hi"}},
            "request 'a': 'messages' must be a list of {role, content} objects, got a dict",
        ),
        (
            {"id": "a", "messages": ["hi"]},
            "request 'a': 'messages[0]' must be an object with 'role' and 'content', got a str",
        ),
        (
            {**GOOD, "id": "a", "max_tokens": "lots"},
            "request 'a': 'max_tokens' must be a positive integer, got 'lots'",
        ),
        ({**GOOD, "id": None}, "'id' must be a non-empty string, got null"),
        ({**GOOD, "id": ""}, "'id' must be a non-empty string, got \"\""),
        (
            {"id": "a", "messages": [{"role": "wizard", "content": "hi"}]},
            "messages[0].role is 'wizard'; expected one of "
            "system, developer, user, assistant, tool, function",
        ),
        (
            {"id": "a", "messages": [{"role": "user"}]},
            "messages[0] (user) has no content; expected non-empty text or content parts",
        ),
        (
            {"custom_id": "", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}},
            "'custom_id' must be a non-empty string, got \"\"",
        ),
    ],
)
def test_a_bad_request_line_is_named_by_file_and_line(
    tmp_path: Path, line: dict[str, object], expected: str
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(GOOD) + "\n" + json.dumps(line) + "\n")
    answer = cli("submit", str(requests), "--model", "gpt-4o-mini", "--workdir", str(tmp_path / "work"))
    assert one_error_line(answer) == f"error: {requests}:2: {expected}"
    assert not (tmp_path / "work" / "batches.db").exists()


def test_bytes_that_are_not_utf8_are_named_by_line_and_column(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(json.dumps(GOOD).encode() + b'\n{"id": "caf\xe9", "messages": []}\n')
    answer = cli("submit", str(requests), "--model", "gpt-4o-mini", "--workdir", str(tmp_path / "work"))
    assert one_error_line(answer) == (
        f"error: {requests}:2: not UTF-8 text (byte 0xe9 at column 12); save the file as UTF-8"
    )


@pytest.mark.parametrize("budget", ["nan", "-1", "inf", "lots"])
def test_a_budget_that_is_not_a_finite_amount_of_dollars_is_refused(tmp_path: Path, budget: str) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(GOOD) + "\n")
    answer = cli("submit", str(requests), "--model", "gpt-4o-mini", f"--max-cost-usd={budget}")
    assert answer.returncode == 2 and "Traceback" not in answer.stderr
    assert answer.stderr.splitlines()[-1].startswith(
        "batch-pipelines submit: error: argument --max-cost-usd: "
    )
    assert f"got '{budget}'" in answer.stderr


def test_a_workdir_that_is_a_file_is_named(tmp_path: Path) -> None:
    blocking = tmp_path / "notes.txt"
    blocking.write_text("not a folder")
    expected = (
        f"error: working folder {blocking}: {blocking} is a file, not a folder; give --workdir (or "
        "$BATCH_PIPELINES_HOME) a folder, which is created when missing"
    )
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(GOOD) + "\n")
    for argv in (("submit", str(requests), "--model", "m"), ("status",), ("query", "SELECT 1"), ("cost",)):
        assert one_error_line(cli(*argv, "--workdir", str(blocking))) == expected
    assert blocking.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty (0 bytes) though a store was expected"),
        (b"this is not sqlite\n" * 20, "cannot be read as a store (file is not a database)"),
    ],
)
def test_an_empty_or_corrupt_store_is_named_with_how_to_recover(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    store = workdir / "batches.db"
    store.write_bytes(content)
    expected = (
        f"error: batch store {store} {problem}: restore it from a backup, or move it aside (e.g. "
        f"`mv {store} {store}.broken`) to start a new store: the result files are kept, and a re-run "
        "skips every item they already answer"
    )
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(GOOD) + "\n")
    for argv in (
        ("status", "--all"),
        ("submit", str(requests), "--model", "m"),
        ("query", "SELECT 1"),
        ("cost",),
    ):
        assert one_error_line(cli(*argv, "--workdir", str(workdir))) == expected
    assert store.read_bytes() == content  # nothing started again from zero
    doctor = cli("doctor", "--workdir", str(workdir))
    assert doctor.returncode == 1 and doctor.stdout.splitlines() == [
        f"store: {expected.removeprefix('error: ')}"
    ]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "batches.db").write_bytes(b"")
    for answer in (
        cli("--debug", "status", "--workdir", str(workdir)),
        cli("status", "--workdir", str(workdir), env={"BATCH_PIPELINES_DEBUG": "1"}),
    ):
        assert answer.returncode != 0
        assert "Traceback (most recent call last)" in answer.stderr and "StoreFileError" in answer.stderr


def wait_for(workdir: Path, job_id: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = cli("status", "--all", "--refresh", "--json", "--workdir", str(workdir), env=env)
        if [job["status"] for job in json.loads(status.stdout) if job["id"] == job_id] == ["completed"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not complete")


def test_a_job_id_reused_with_another_file_is_refused_and_markup_prints_as_text(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    env = {"BATCH_PIPELINES_BASE_URL": emulator.openai_base_url}
    workdir = tmp_path / "work"
    hostile = ["[/]", "[link=http://evil.example]click[/link]", "ansi\x1b[31mred\x1b[0m\x1b]8;;http://e\x07x"]
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps({**GOOD, "id": item}) + "\n" for item in hostile))

    def submit_as_j1(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = ("submit", str(path), "--model", "gpt-4o-mini", "--job-id", "j1", "--workdir", str(workdir))
        return cli(*argv, *extra, env=env)

    submitted = submit_as_j1(first, "--pipeline", "[/]")
    assert submitted.returncode == 0, submitted.stderr

    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps({**GOOD, "id": "other"}) + "\n")
    line = one_error_line(submit_as_j1(second))
    assert line.startswith("error: job 'j1' was submitted from another file (first.jsonl, sha256 ")
    assert f"not {second} (sha256 " in line and line.endswith(
        "give a new --job-id for new requests, or the same file to resume the job"
    )
    again = submit_as_j1(first, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["total"] == 3  # the same job, resumed

    wait_for(workdir, "j1", env)
    results = cli("results", "j1", "--workdir", str(workdir), env=env)
    assert results.returncode == 0, results.stderr
    assert "[/]" in results.stdout and "[link=http://evil.example]click[/link]" in results.stdout
    assert "ansiredx" in results.stdout and "\x1b" not in results.stdout and "\x07" not in results.stdout
    cost = cli("cost", "--by", "pipeline", "--workdir", str(workdir), env=env)
    assert cost.returncode == 0, cost.stderr
    assert "[/]" in cost.stdout
