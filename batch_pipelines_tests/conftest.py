"""Fixtures every test package shares: the anyio backend and a running provider emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batch_pipelines.emulator.process import EmulatorProcess

# Simulated durations are multiplied by this: a small batch completes in well under a second.
TEST_TIME_SCALE = 0.02


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    """A fresh emulator process (own state, fast clock, seed 7); see docs/emulator.md for its admin API."""
    with EmulatorProcess(time_scale=TEST_TIME_SCALE, seed=7) as running:
        yield running
