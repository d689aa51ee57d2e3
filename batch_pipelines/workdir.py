"""The one place that decides where project data lives (engine store, Parquet, the demo's Dagster home).

Order: an explicit `--workdir`, else `$BATCH_PIPELINES_HOME`, else `.batch_pipelines` in the current
directory (git-ignored, so `dagster dev` from the repository keeps its data beside the code).
"""

from __future__ import annotations

import os
from pathlib import Path

WORKDIR_ENV = "BATCH_PIPELINES_HOME"
DEFAULT_WORKDIR_NAME = ".batch_pipelines"


def resolve_workdir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The absolute working folder; not created here."""
    if explicit:
        chosen = Path(explicit)
    elif os.environ.get(WORKDIR_ENV):
        chosen = Path(os.environ[WORKDIR_ENV])
    else:
        chosen = Path.cwd() / DEFAULT_WORKDIR_NAME
    return chosen.expanduser().resolve()
