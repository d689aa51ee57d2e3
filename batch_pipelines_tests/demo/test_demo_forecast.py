"""The demo's cost forecasts against its bills: from the second partition on, the expected cost is within
10 % of what was billed, and no worst case is ever below the bill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_pipelines.cli import main


def test_demo_forecasts_come_within_ten_percent_once_there_is_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # the demo sets its own
    workdir = tmp_path / "work"
    assert main(["demo", "--workdir", str(workdir), "--rows-per-day", "100"]) == 0
    output = capsys.readouterr().out
    submitted = [line for line in output.splitlines() if line.startswith("submitted ")]
    assert len(submitted) == 7
    assert "expected $" in submitted[0] and "(no history: 50 % of max_tokens;" in submitted[0]
    assert "(from 6 earlier partitions:" in submitted[-1]

    assert main(["cost", "--workdir", str(workdir), "--by", "partition_key,job", "--json"]) == 0
    jobs = sorted(json.loads(capsys.readouterr().out), key=lambda row: row["partition_key"])
    assert len(jobs) == 7 and jobs[0]["forecast_basis"].startswith("no history: 50 % of max_tokens")
    for row in jobs:
        assert row["cost_usd"] > 0 and row["worst_case_usd"] >= row["cost_usd"], row
        assert row["worst_case_error_pct"] >= 0
    for earlier, row in enumerate(jobs[1:], start=1):
        assert row["forecast_basis"].startswith(f"from {earlier} earlier partition"), row
        assert abs(row["expected_usd"] - row["cost_usd"]) <= 0.10 * row["cost_usd"], row
        assert abs(row["expected_error_pct"]) <= 10.0
