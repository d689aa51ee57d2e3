"""Every cent in `batch-pipelines cost`: a hybrid run and packing runs, built and driven by
`PipelineDriver` against the emulator, account for exactly what the emulator billed, split by path, and
every results row names the path that answered it."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.demo.driver import PipelineDriver
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import ticket_spec

DAY = "2026-11-02"
MODEL = "gpt-4o-mini"
# OpenAI's list price of the model (USD per 1M tokens) and the Batch API's discount: the oracle the
# figures are checked against, independent of the project's own price table.
INPUT_PER_MILLION, OUTPUT_PER_MILLION, BATCH_SHARE = 0.15, 0.60, 0.5
REALTIME_PATHS = ("realtime", "packed")


def write_tickets(workdir: Path, rows: int) -> dict[str, int]:
    """A day of tickets with a `priority` column (every third is 9, the rest 1); returns id -> priority."""
    tickets = [
        {
            "ticket_id": f"t{index}",
            "created_at": datetime(2026, 11, 2) + timedelta(minutes=index),
            "subject": f"Subject {index}",
            "body": f"Body of ticket {index}",
            "priority": 9 if index % 3 == 0 else 1,
        }
        for index in range(rows)
    ]
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    pl.DataFrame(tickets).write_parquet(workdir / "data" / "tickets.parquet")
    return {str(ticket["ticket_id"]): int(str(ticket["priority"])) for ticket in tickets}


def billed_usd(emulator: EmulatorProcess) -> dict[str, tuple[int, int, float]]:
    """(input tokens, output tokens, USD) the emulator billed, per channel (`batch`, `realtime`)."""
    billed: dict[str, tuple[int, int, float]] = {}
    for channel, models in emulator.stats()["billed"].get("openai", {}).items():
        usage = models[MODEL]
        usd = (usage["input_tokens"] * INPUT_PER_MILLION + usage["output_tokens"] * OUTPUT_PER_MILLION) / 1e6
        billed[channel] = (
            usage["input_tokens"],
            usage["output_tokens"],
            usd * (BATCH_SHARE if channel == "batch" else 1),
        )
    return billed


def cost_by_channel(workdir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[int, int, float]]:
    """`batch-pipelines cost --json`, its rows summed per channel (the realtime and packed paths are both
    the emulator's realtime channel)."""
    capsys.readouterr()
    assert main(["cost", "--workdir", str(workdir), "--json"]) == 0
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for row in json.loads(capsys.readouterr().out):
        channel = "realtime" if row["path"] in REALTIME_PATHS else row["path"]
        for index, name in enumerate(("input_tokens", "output_tokens", "cost_usd")):
            sums[channel][index] += row[name]
    return {channel: (int(s[0]), int(s[1]), float(s[2])) for channel, s in sums.items()}


def assert_costs_match(
    cost: dict[str, tuple[int, int, float]], billed: dict[str, tuple[int, int, float]]
) -> None:
    assert set(cost) == set(billed)
    for channel, (input_tokens, output_tokens, usd) in billed.items():
        assert cost[channel][:2] == (input_tokens, output_tokens), channel
        assert cost[channel][2] == pytest.approx(usd, rel=0.01), channel


def costs_view(workdir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    capsys.readouterr()
    sql = "SELECT path, sum(actual_usd) FROM costs GROUP BY path ORDER BY path"
    assert main(["query", "--workdir", str(workdir), "--format", "csv", sql]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()[1:]]
    return {path: float(usd) for path, usd in rows}


@pytest.fixture
def make_driver(tmp_path: Path, emulator: EmulatorProcess, dagster_instance: dg.DagsterInstance) -> Any:
    def make(**spec_changes: Any) -> PipelineDriver:
        engine = BatchEngineResource(
            api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
            base_url=emulator.openai_base_url,
            workdir=str(tmp_path / "work"),
        )
        limiter = RateLimiterResource(
            url=f"sqlite:///{tmp_path / 'limiter.db'}", requests_per_minute=6_000, tokens_per_minute=2_000_000
        )
        return PipelineDriver(
            ticket_spec(**spec_changes),
            engine,
            dagster_instance,
            log=lambda _line: None,
            dagster_log_level="ERROR",
            rate_limiter=limiter,
        )

    return make


def test_a_hybrid_run_accounts_for_every_cent_by_path(
    make_driver: Any,
    emulator: EmulatorProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver: PipelineDriver = make_driver(mode="auto", urgent={"priority_column": "priority", "threshold": 8})
    priorities = write_tickets(tmp_path / "work", rows=30)

    submitted = driver.submit(DAY)
    assert driver.collect_all(timeout_s=120, poll_s=0.1) == 1

    results = pl.read_parquet(tmp_path / "work" / "results" / "tickets" / f"{DAY}.parquet")
    by_path = dict(zip(results["id"], results["path"], strict=True))
    assert by_path == {
        ticket: "realtime" if priority >= 8 else "batch" for ticket, priority in priorities.items()
    }
    billed = billed_usd(emulator)
    assert_costs_match(cost_by_channel(tmp_path / "work", capsys), billed)
    [event] = submitted.get_asset_materialization_events()[-1:]
    metadata = event.materialization.metadata
    assert metadata["realtime_cost_usd"].value == pytest.approx(billed["realtime"][2], rel=0.01)
    realtime_rows = results.filter(pl.col("path") == "realtime")
    assert realtime_rows["cost_usd"].sum() == pytest.approx(billed["realtime"][2], rel=0.01)
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "250")  # the table unwrapped
    assert main(["cost", "--workdir", str(tmp_path / "work")]) == 0
    table = capsys.readouterr().out
    assert "TOTAL batch" in table and "TOTAL realtime" in table
    view = costs_view(tmp_path / "work", capsys)
    assert view == {
        "batch": pytest.approx(billed["batch"][2], rel=0.01),
        "realtime": pytest.approx(billed["realtime"][2], rel=0.01),
    }


@pytest.mark.parametrize(
    ("max_tokens", "paths"),
    [
        (30, {"packed"}),  # every pack answers its five items
        (10, {"realtime"}),  # no pack's answer fits: each is paid, unparsable, and its items go alone
    ],
)
def test_a_packing_run_accounts_for_every_call_it_paid_for(
    make_driver: Any,
    emulator: EmulatorProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    max_tokens: int,
    paths: set[str],
) -> None:
    driver: PipelineDriver = make_driver(
        mode="realtime", realtime={"items_per_prompt": 5}, params={"max_tokens": max_tokens}
    )
    priorities = write_tickets(tmp_path / "work", rows=20)

    driver.submit(DAY)
    assert driver.collect_all() == 0  # answered within the run: nothing for a sensor to collect

    results = pl.read_parquet(tmp_path / "work" / "results" / "tickets" / f"{DAY}.parquet")
    assert sorted(results["id"]) == sorted(priorities) and set(results["path"]) == paths
    billed = billed_usd(emulator)
    assert_costs_match(cost_by_channel(tmp_path / "work", capsys), billed)
    # Each row bears its share of its pack, also when the pack could not answer it.
    assert results["cost_usd"].sum() == pytest.approx(billed["realtime"][2], rel=1e-9)
    capsys.readouterr()
    assert main(["cost", "--workdir", str(tmp_path / "work"), "--json"]) == 0
    calls = {row["path"]: row["calls"] for row in json.loads(capsys.readouterr().out)}
    assert calls["packed"] == 4  # 20 items, five a pack
    assert sum(calls.values()) == emulator.stats()["billed"]["openai"]["realtime"][MODEL]["requests"]


def test_the_driver_asks_for_the_rate_limiter_a_realtime_or_auto_pipeline_draws_on(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        workdir=str(tmp_path / "work"),
    )
    for changes in (
        {"mode": "realtime"},
        {"mode": "auto", "urgent": {"priority_column": "p", "threshold": 1}},
    ):
        with pytest.raises(ValueError, match="give PipelineDriver a rate_limiter"):
            PipelineDriver(ticket_spec(**changes), engine, dagster_instance)
