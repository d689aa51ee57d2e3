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
