"""Today's models through a pipeline: a gpt-5 batch keeps every line, and a prompt that repeats a long
shared prefix is priced with its cached tokens (Parquet columns, costs, and the `cost` command)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.components import BatchEngineResource
from batch_pipelines.components.resources import key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import (
    ROWS_PER_DAY,
    PipelineHarness,
    ticket_spec,
    write_tickets,
)

PARTITION = "2026-11-02"
# About 1,600 tokens of instructions every request starts with: above the 1,024-token caching minimum.
HANDBOOK = " ".join(
    f"Rule {n}: route tickets about topic {n} to queue {n % 7} unless urgent." for n in range(95)
)
# gpt-4o-mini's list prices (USD per 1M tokens): input, cached input, output; batches cost half.
INPUT, CACHED_INPUT, OUTPUT, BATCH = 0.15, 0.075, 0.60, 0.5


def run_partition(harness: PipelineHarness) -> pl.DataFrame:
    assert harness.submit(PARTITION).success
    [request] = harness.wait_for_run_requests()
    assert harness.collect(request).success
    return harness.results(PARTITION)


def make_harness(
    root: Path, emulator: EmulatorProcess, instance: dg.DagsterInstance, **spec: object
) -> PipelineHarness:
    workdir = root / "work"
    write_tickets(workdir)
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(workdir),
    )
    return PipelineHarness(spec=ticket_spec(**spec), engine=engine, instance=instance, workdir=workdir)


def test_a_gpt_5_mini_pipeline_answers_every_line(
    tmp_path: Path, emulator: EmulatorProcess, dagster_instance: dg.DagsterInstance
) -> None:
    """The spec says max_tokens, as it did for gpt-4o-mini; the line goes out as max_completion_tokens."""
    harness = make_harness(tmp_path, emulator, dagster_instance, model="gpt-5-mini")
    results = run_partition(harness)
    assert results.height == ROWS_PER_DAY
    assert (results["output_tokens"] > 0).all() and (results["cost_usd"] > 0).all()
    dead = harness.engine.layout(harness.spec).partition_path("dead_letters", "tickets", PARTITION)
    assert not dead.exists() or pl.read_parquet(dead).height == 0


def test_a_repeated_prefix_is_cached_and_priced_lower(
    tmp_path: Path,
    emulator: EmulatorProcess,
    dagster_instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    prompt = {"system": HANDBOOK, "user": "{subject}\n\n{body}"}
    cached_run = make_harness(tmp_path / "cached", emulator, dagster_instance, prompt=prompt)
    cached = run_partition(cached_run)

    emulator.configure({"model": {"prompt_cache_min_tokens": 0}})  # the same batch, no prompt cache
    # Its own Dagster instance: the same requests make the same job, which the first instance already
    # holds as materialized, so its sensor would rightly ask for no second results run.
    (tmp_path / "plain_home").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "plain_home")) as plain_instance:
        plain_run = make_harness(tmp_path / "plain", emulator, plain_instance, prompt=prompt)
        plain = run_partition(plain_run)

    # The first request writes the prefix, every later one reads it (in 128-token steps from 1,024).
    assert cached["cached_input_tokens"].to_list().count(0) == 1
    assert (cached["cached_input_tokens"].filter(cached["cached_input_tokens"] > 0) >= 1024).all()
    assert (cached["cached_input_tokens"] <= cached["input_tokens"]).all()
    assert plain["cached_input_tokens"].sum() == 0
    assert cached["input_tokens"].sum() == plain["input_tokens"].sum()

    by_hand = (
        BATCH
        / 1e6
        * sum(
            (row["input_tokens"] - row["cached_input_tokens"]) * INPUT
            + row["cached_input_tokens"] * CACHED_INPUT
            + row["output_tokens"] * OUTPUT
            for row in cached.iter_rows(named=True)
        )
    )
    cost = cached["cost_usd"].sum()
    assert cost == pytest.approx(by_hand, rel=0.01)
    assert cost < plain["cost_usd"].sum()
    assert plain["cost_usd"].sum() == pytest.approx(
        BATCH / 1e6 * (plain["input_tokens"].sum() * INPUT + plain["output_tokens"].sum() * OUTPUT), rel=0.01
    )

    assert main(["cost", "--workdir", str(cached_run.workdir), "--by", "model", "--json"]) == 0
    [line] = json.loads(capsys.readouterr().out)
    assert line["cached_input_tokens"] == cached["cached_input_tokens"].sum()
    saved_by_hand = BATCH / 1e6 * cached["cached_input_tokens"].sum() * (INPUT - CACHED_INPUT)
    assert line["cache_saved_usd"] == pytest.approx(saved_by_hand, rel=0.01)
    assert line["cost_usd"] == pytest.approx(by_hand, rel=0.01)
    assert main(["cost", "--workdir", str(cached_run.workdir), "--by", "model"]) == 0
    assert "cache_saved_usd" in capsys.readouterr().out
