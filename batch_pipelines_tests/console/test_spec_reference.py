"""docs/spec-reference.md is the generator's output for the current spec models."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines.cli import main
from batch_pipelines.console.spec_reference import render_spec_reference
from batch_pipelines.pipeline.spec import PipelineSpec

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "spec-reference.md"


def test_committed_reference_matches_the_code() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_spec_reference(), (
        "docs/spec-reference.md is stale: run `batch-pipelines spec-reference --out docs/spec-reference.md`"
    )


def test_every_field_is_documented() -> None:
    reference = render_spec_reference()
    for name, field in PipelineSpec.model_fields.items():
        assert f"| `{name}` |" in reference
        assert field.description, f"PipelineSpec.{name} has no description"


def test_command_writes_the_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec-reference"]) == 0
    assert capsys.readouterr().out == render_spec_reference()
    out = tmp_path / "ref.md"
    assert main(["spec-reference", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_spec_reference()
