"""`batch-pipelines export` / `import`: a partition's requests out in the OpenAI batch input format, run by
an OpenAI-compatible batch engine (the emulator's, standing in for `vllm run-batch`), answers back in
exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.demo.dataset import write_demo_dataset
from batch_pipelines.emulator.process import EmulatorProcess

PARTITION = "2026-11-03"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    write_demo_dataset(folder / "demo" / "tickets", rows_per_day=6)
    return folder


def run_offline_engine(emulator: EmulatorProcess, requests: Path, results: Path) -> None:
    """What `vllm run-batch -i requests -o results` does, through the emulator's OpenAI batch API."""
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test")
    with requests.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.output_file_id
    results.write_bytes(client.files.content(batch.output_file_id).read())


def query(workdir: Path, sql: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert main(["query", "--workdir", str(workdir), "--format", "csv", sql]) == 0
    return capsys.readouterr().out.splitlines()[1:]


def test_exported_requests_come_back_once_however_often_they_are_imported(
    workdir: Path, tmp_path: Path, emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    assert (
        main(["export", "support_tickets", PARTITION, "--out", str(requests), "--workdir", str(workdir)]) == 0
    )
    lines = [json.loads(line) for line in requests.read_text().splitlines()]
    tickets = pl.read_parquet(workdir / "demo" / "tickets" / "tickets.parquet")
    day = tickets.filter(pl.col("created_at").dt.date().cast(pl.String) == PARTITION)
    usable = day.filter(pl.col("body").is_not_null()).unique("ticket_id", keep="none")
    assert sorted(line["custom_id"] for line in lines) == sorted(usable["ticket_id"])
    first = lines[0]
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    assert first["body"]["model"] == "gpt-4o-mini" and first["body"]["messages"][0]["role"] == "system"
    assert first["body"]["response_format"]["type"] == "json_schema"

    run_offline_engine(emulator, requests, results)
    arguments = ["import", "support_tickets", PARTITION, str(results), "--workdir", str(workdir)]
    assert main(arguments) == 0
    assert f"{len(lines)} new result(s)" in capsys.readouterr().out
    counted = (
        "SELECT count(*), count(DISTINCT id), count(category) FROM results WHERE partition_key = '2026-11-03'"
    )
    assert query(workdir, counted, capsys) == [f"{len(lines)},{len(lines)},{len(lines)}"]

    assert main(arguments) == 0  # the same file again
    assert "0 new result(s)" in capsys.readouterr().out
    assert query(workdir, counted, capsys) == [f"{len(lines)},{len(lines)},{len(lines)}"]

    # Nothing is left to send: the submission path and the exporter agree on what is answered.
    assert (
        main(["export", "support_tickets", PARTITION, "--out", str(requests), "--workdir", str(workdir)]) == 0
    )
    assert requests.read_text() == ""


def test_a_bad_line_is_named_and_nothing_is_written(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = tmp_path / "requests.jsonl"
    assert (
        main(["export", "support_tickets", PARTITION, "--out", str(requests), "--workdir", str(workdir)]) == 0
    )
    known = json.loads(requests.read_text().splitlines()[0])["custom_id"]
    answer = {
        "custom_id": known,
        "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "{}"}}]}},
    }
    results = tmp_path / "results.jsonl"
    arguments = ["import", "support_tickets", PARTITION, str(results), "--workdir", str(workdir)]

    results.write_text(json.dumps(answer) + "\n{not json\n")
    assert main(arguments) == 1
    assert f"{results}, line 2" in capsys.readouterr().err

    stranger = dict(answer, custom_id="T999999")
    results.write_text(json.dumps(answer) + "\n" + json.dumps(stranger) + "\n")
    assert main(arguments) == 1
    assert "line 2: custom_id 'T999999' is not an item of this partition" in capsys.readouterr().err
    assert not (workdir / "results" / "support_tickets").exists()


def test_an_unknown_pipeline_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["export", "nope", PARTITION, "--out", str(tmp_path / "r.jsonl"), "--workdir", str(tmp_path)])
        == 1
    )
    error = capsys.readouterr().err
    assert "no pipeline named 'nope'" in error and "support_tickets" in error


def vllm_error_line(custom_id: str, error: object, status: int = 400) -> str:
    """A failed line as `vllm run-batch` writes it: a body-less response and the error at the top level."""
    response = {"status_code": status, "request_id": f"vllm-batch-{custom_id}", "body": None}
    return json.dumps(
        {"id": f"vllm-{custom_id}", "custom_id": custom_id, "response": response, "error": error}
    )


def test_an_imported_vllm_file_keeps_each_top_level_error_message_and_type(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = tmp_path / "requests.jsonl"
    assert (
        main(["export", "support_tickets", PARTITION, "--out", str(requests), "--workdir", str(workdir)]) == 0
    )
    ids = [json.loads(line)["custom_id"] for line in requests.read_text().splitlines()]
    too_long, overloaded, wrapped, plain = ids[:4]
    answered = {
        "custom_id": ids[4],
        "response": {
            "status_code": 200,
            "body": {
                "choices": [{"message": {"content": '{"category": "billing", "urgency": 2}'}}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 9},
            },
        },
        "error": None,
    }
    lines = [
        vllm_error_line(
            too_long,
            {
                "message": "This model's maximum context length is 4096 tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        vllm_error_line(
            overloaded,
            {
                "message": "The engine is overloaded.",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            },
            status=500,
        ),
        vllm_error_line(
            wrapped, {"error": {"message": "Unknown model 'x'.", "type": "NotFoundError", "code": 404}}, 404
        ),
        vllm_error_line(plain, "Request timed out after 30 s"),
        json.dumps(answered),
    ]
    results = tmp_path / "vllm_results.jsonl"
    results.write_text("\n".join(lines) + "\n")

    arguments = ["import", "support_tickets", PARTITION, str(results), "--workdir", str(workdir)]
    assert main(arguments) == 0
    assert "1 new result(s), 4 dead letter(s)" in capsys.readouterr().out
    dead = query(
        workdir, "SELECT id, error_type, transient, error_message FROM dead_letters ORDER BY id", capsys
    )
    by_id = {row.split(",", 3)[0]: row.split(",", 3)[1:] for row in dead}
    assert by_id[too_long] == [
        "invalid_request",
        "False",
        "BadRequestError: This model's maximum context length is 4096 tokens.",
    ]
    assert by_id[overloaded] == ["server_error", "True", "InternalServerError: The engine is overloaded."]
    assert by_id[wrapped] == ["not_found", "False", "NotFoundError: Unknown model 'x'."]
    assert by_id[plain] == ["invalid_request", "False", "Request timed out after 30 s"]
    assert not any("returned no result" in row for row in dead)
    assert query(workdir, "SELECT id, path FROM results", capsys) == [f"{ids[4]},imported"]
