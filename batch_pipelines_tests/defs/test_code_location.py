"""The shipped code location loads the demo pipeline and passes Dagster's own validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

import batch_pipelines.definitions as definitions

REPOSITORY = Path(__file__).resolve().parents[2]


def test_defs_folder_holds_the_demo_pipeline_and_shared_resources() -> None:
    defs = dg.load_from_defs_folder(path_within_project=Path(definitions.__file__).parent)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"support_tickets/input", "support_tickets/submission", "support_tickets/results"} <= keys
    assert {"reviews/input", "reviews/submission", "reviews/results"} <= keys  # the embeddings demo
    assert defs.resources is not None and {"batch_engine", "duckdb"} <= set(defs.resources)
    assert defs.resolve_sensor_def("support_tickets_completion_sensor") is not None
    assert defs.resolve_schedule_def("support_tickets_nightly").cron_schedule == "0 3 * * *"


def test_workspace_and_dg_check_pass() -> None:
    environment = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    bin_dir = Path(sys.executable).parent
    for command in (
        [str(bin_dir / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        [str(bin_dir / "dg"), "check", "defs"],
    ):
        completed = subprocess.run(
            command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=240, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_sensor_interval_can_be_shortened_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(definitions.__file__).parent
    default = dg.load_from_defs_folder(path_within_project=folder)
    assert default.resolve_sensor_def("support_tickets_completion_sensor").minimum_interval_seconds == 60
    monkeypatch.setenv("BATCH_PIPELINES_SENSOR_INTERVAL_S", "5")
    shortened = dg.load_from_defs_folder(path_within_project=folder)
    assert shortened.resolve_sensor_def("support_tickets_completion_sensor").minimum_interval_seconds == 5
