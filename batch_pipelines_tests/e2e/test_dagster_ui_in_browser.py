"""The Dagster UI as an operator opens it: the demo pipeline materialized, then `dagster-daemon` and
`dagster-webserver` on 127.0.0.1 and headless Chromium showing the asset graph, the partitions and the
metadata plots of progress and cost.

Set BATCH_PIPELINES_UPDATE_SCREENSHOTS=1 to refresh the screenshots the README shows (docs/images/)."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from batch_pipelines.demo.command import run_demo
from batch_pipelines_tests.e2e.browser import chromium_page, require_chromium
from batch_pipelines_tests.e2e.deployment import REPO_ROOT, DagsterDeployment

PARTITIONS = [f"2026-11-0{day}" for day in range(1, 8)]
PLOTTED_KEYS = ["items_done", "percent_done", "items_per_hour", "eta_seconds", "cost_usd", "cost_saved_usd"]
UI_TIMEOUT_MS = 60_000


def dismiss_welcome_dialog(page: Any) -> None:
    """The first visit shows a community sign-up dialog over the page; skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5_000)
    except Exception:  # Playwright's TimeoutError: no dialog this time
        return
    skip.click()
    skip.wait_for(state="hidden", timeout=UI_TIMEOUT_MS)


def wait_for_texts(page: Any, texts: list[str], *, times: int = 1) -> str:
    """Wait until the rendered page shows every text as a line of its own (at least `times` times);
    returns the page's text."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while True:
        lines = str(page.inner_text("body")).splitlines()
        missing = [text for text in texts if lines.count(text) < times]
        if not missing:
            return "\n".join(lines)
        if time.monotonic() > deadline:
            shown = "\n".join(lines)[:3000]
            raise AssertionError(f"the page never showed {missing} ({times}x); it shows:\n{shown}")
        page.wait_for_timeout(250)


def keep_screenshot(path: Path) -> None:
    if os.environ.get("BATCH_PIPELINES_UPDATE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "images" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


@pytest.mark.timeout(1800)
def test_ui_shows_graph_partitions_and_metadata_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium = require_chromium()
    workdir = tmp_path / "work"
    home = workdir / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # run_demo points DAGSTER_HOME here; restored afterwards
    run_demo(workdir, rows_per_day=8, time_scale=0.02, out=io.StringIO())

    env = {
        "BATCH_PIPELINES_HOME": str(workdir),
        "BATCH_PIPELINES_API_KEY": "sk-browser-test",
        "BATCH_PIPELINES_BASE_URL": "http://127.0.0.1:9/v1",  # nothing to call: every job has ended
        "BATCH_PIPELINES_SENSOR_INTERVAL_S": "5",
    }
    shots = tmp_path / "shots"
    shots.mkdir()
    with (
        DagsterDeployment(home, "batch_pipelines.definitions", env) as dagster,
        chromium_page(chromium, tmp_path / "chromium-profile") as page,
    ):
        page.set_default_timeout(UI_TIMEOUT_MS)  # type: ignore[attr-defined]
        group = "locations/batch_pipelines.definitions/asset-groups/support_tickets"
        page.goto(f"{dagster.url}/{group}")  # type: ignore[attr-defined]
        dismiss_welcome_dialog(page)
        wait_for_texts(page, ["input", "submission", "results", "OpenAI", "batch", "DuckDB"])
        wait_for_texts(page, ["100% filled"], times=3)  # every asset has all 7 partitions materialized
        page.screenshot(path=str(shots / "dagster-asset-graph.png"))  # type: ignore[attr-defined]

        page.goto(f"{dagster.url}/assets/support_tickets/results?view=partitions")  # type: ignore[attr-defined]
        dismiss_welcome_dialog(page)
        wait_for_texts(page, PARTITIONS)

        page.goto(f"{dagster.url}/assets/support_tickets/results")  # type: ignore[attr-defined]
        dismiss_welcome_dialog(page)
        page.get_by_text("Plots", exact=True).first.click()  # type: ignore[attr-defined]
        wait_for_texts(page, PLOTTED_KEYS)  # one chart per numeric key, by partition
        assert page.locator("canvas").count() >= len(PLOTTED_KEYS)  # type: ignore[attr-defined]
        page.screenshot(path=str(shots / "dagster-metadata-plots.png"))  # type: ignore[attr-defined]
        page.get_by_text("Events", exact=True).first.click()  # type: ignore[attr-defined]
        wait_for_texts(page, PLOTTED_KEYS)  # and over time, observations and materializations together

    for shot in shots.iterdir():
        assert shot.stat().st_size > 20_000, f"{shot.name} looks blank"
        keep_screenshot(shot)
