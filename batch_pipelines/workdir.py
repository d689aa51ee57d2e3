"""The one place that decides where project data lives (engine store, Parquet, the demo's Dagster home).

Order: an explicit `--workdir`, else `$BATCH_PIPELINES_HOME`, else `.batch_pipelines` in the current
directory (git-ignored, so `dagster dev` from the repository keeps its data beside the code).
"""

from __future__ import annotations

import os
from pathlib import Path

WORKDIR_ENV = "BATCH_PIPELINES_HOME"
DEFAULT_WORKDIR_NAME = ".batch_pipelines"


PRIVATE_FOLDER = 0o700  # the working folder holds every prompt and answer: its owner's alone
PRIVATE_FILE = 0o600


def make_workdir(path: Path) -> Path:
    """Create the working folder (and its parents) if missing, readable by its owner alone; an existing
    folder keeps the permissions it has."""
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    return path


class WorkdirError(ValueError):
    """The working folder named cannot be one (a file is in the way)."""


def resolve_workdir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The absolute working folder; not created here. A path that is a file, or lies under one, is
    refused (WorkdirError naming it)."""
    if explicit:
        chosen = Path(explicit)
    elif os.environ.get(WORKDIR_ENV):
        chosen = Path(os.environ[WORKDIR_ENV])
    else:
        chosen = Path.cwd() / DEFAULT_WORKDIR_NAME
    resolved = chosen.expanduser().resolve()
    blocking = next((path for path in (resolved, *resolved.parents) if path.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise WorkdirError(
            f"working folder {resolved}: {blocking} is a file, not a folder; give --workdir (or "
            f"${WORKDIR_ENV}) a folder, which is created when missing"
        )
    return resolved
