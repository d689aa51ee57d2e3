"""The fault suite's fixtures, and the table of figures printed at the end of a run that recorded any."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from batch_pipelines_tests.reliability.figures import RECORDED, format_table

SEED = 20261122


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        yield instance


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RECORDED:
        terminalreporter.section("reliability figures")
        terminalreporter.write_line(format_table(RECORDED))
