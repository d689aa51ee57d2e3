"""`batch-pipelines report`: an HTML page and PNG charts from a working folder a real pipeline ran in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import matplotlib.image
import pytest

from batch_pipelines.cli import main
from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import PipelineHarness, ticket_spec, write_tickets


@pytest.fixture
def ran_pipeline(tmp_path: Path, emulator: EmulatorProcess) -> Path:
    """Two partitions through Dagster: one clean, one where half the requests are rejected for good."""
    workdir = tmp_path / "work"
    write_tickets(workdir)
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(workdir),
    )
    with dg.DagsterInstance.ephemeral() as instance:
        harness = PipelineHarness(spec=ticket_spec(), engine=engine, instance=instance, workdir=workdir)
        harness.submit("2026-11-01")
        harness.collect(harness.wait_for_run_requests()[0])
        emulator.configure({"faults": {"batch_error_rates": {"invalid_request": 0.5}}})
        harness.submit("2026-11-02")
        for request in harness.wait_for_run_requests():
            if request.partition_key == "2026-11-02":
                harness.collect(request)
    return workdir


def test_report_page_and_charts(
    ran_pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site" / "report.html"
    assert main(["report", "--workdir", str(ran_pipeline), "--out", str(out)]) == 0
    written = [Path(line) for line in capsys.readouterr().out.split()]
    assert out in written
    charts = [path for path in written if path.suffix == ".png"]
    assert {path.name for path in charts} == {
        "report_items_per_hour.png",
        "report_cost_over_time.png",
        "report_cost_per_partition.png",
        "report_failures_by_reason.png",
        "report_batch_vs_realtime.png",
    }
    for chart in charts:
        height, width, _ = matplotlib.image.imread(chart).shape
        assert (width, height) == (900, 420)

    page = out.read_text()
    assert set(re.findall(r"<img src='([^']+)'", page)) == {chart.name for chart in charts}
    assert "2026-11-01" in page and "2026-11-02" in page
    assert "invalid_request" in page
    assert "50.0%" in page  # the discount realised at the batch price
    assert "forecast: expected" in page and "forecast: worst case" in page
    assert "no history: 50 % of max_tokens" in page  # the first partition's forecast basis

    assert main(["cost", "--workdir", str(ran_pipeline), "--json"]) == 0
    spend = json.loads(capsys.readouterr().out)
    assert [row["partition_key"] for row in spend] == ["2026-11-01", "2026-11-02"]
    assert spend[1]["failed"] > 0


def test_report_on_an_empty_working_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--workdir", str(tmp_path / "nothing"), "--out", str(out)]) == 0
    assert "nothing yet" in out.read_text()
    assert len(list(tmp_path.glob("report_*.png"))) == 5
