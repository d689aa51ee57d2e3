"""`results_root`: a folder inside the working folder, or an absolute path; a relative path that climbs
out (`../../somewhere`) is refused naming the field, so results never land where `query` does not look."""

from __future__ import annotations

import pytest

from batch_pipelines.pipeline import PipelineSpecError, parse_pipeline_spec
from batch_pipelines_tests.pipeline.specs import declaration


@pytest.mark.parametrize("root", ["../../../somewhere", "results/../../out", "  "])
def test_a_results_root_leaving_the_working_folder_is_refused(root: str) -> None:
    with pytest.raises(PipelineSpecError) as raised:
        parse_pipeline_spec(declaration(results_root=root))
    assert "invalid pipeline 'tickets':\n  field 'results_root': " in str(raised.value)


@pytest.mark.parametrize("root", ["results/tickets", "/srv/shared/answers"])
def test_a_folder_inside_or_an_absolute_path_is_taken(root: str) -> None:
    assert parse_pipeline_spec(declaration(results_root=root)).results_root == root
