"""Finding a declared pipeline by name: the `defs.yaml` files under `batch_pipelines/defs/`, or one given."""

from __future__ import annotations

from pathlib import Path

import yaml

from batch_pipelines.demo.driver import load_component_spec
from batch_pipelines.pipeline.spec import PipelineSpec

DEFS_FOLDER = Path(__file__).resolve().parent.parent / "defs"


def find_pipeline(name: str, defs_file: Path | None = None) -> PipelineSpec:
    """The spec named ``name`` in ``defs_file``, else in the code location's own defs folder."""
    candidates = [defs_file] if defs_file is not None else sorted(DEFS_FOLDER.glob("*/defs.yaml"))
    declared = []
    for path in candidates:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        document = yaml.safe_load(path.read_text()) or {}
        found = (document.get("attributes") or {}).get("name")
        declared.append(str(found))
        if found == name:
            return load_component_spec(path)
    raise ValueError(f"no pipeline named {name!r}; declared: {', '.join(declared) or 'none'}")
