"""The YAML component and the Python factory build the same thing, and refuse bad declarations by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from batch_pipelines.components import BatchEngineResource, BatchPipelineComponent, build_pipeline_defs
from batch_pipelines.pipeline import PipelineSpecError, spec_version
from batch_pipelines_tests.components.conftest import ticket_spec


def component_yaml(**changes: Any) -> dict[str, Any]:
    attributes = ticket_spec().model_dump(mode="json", exclude_none=True)
    attributes.update(changes)
    return {"type": "batch_pipelines.components.BatchPipelineComponent", "attributes": attributes}


def test_yaml_component_matches_the_python_factory() -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            component_cls=BatchPipelineComponent, defs_yaml_contents=component_yaml()
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, from_yaml):
            assert isinstance(component, BatchPipelineComponent)
            engine = dg.Definitions(resources={"batch_engine": BatchEngineResource()})
            from_python = build_pipeline_defs(ticket_spec(), batch_engine=BatchEngineResource())
            yaml_graph = dg.Definitions.merge(from_yaml, engine).resolve_asset_graph()
            python_graph = from_python.resolve_asset_graph()
            assert yaml_graph.get_all_asset_keys() == python_graph.get_all_asset_keys()
            for key in python_graph.get_all_asset_keys():
                assert yaml_graph.get(key).code_version == python_graph.get(key).code_version


def test_what_a_pipeline_becomes() -> None:
    spec = ticket_spec()
    defs = build_pipeline_defs(spec, batch_engine=BatchEngineResource())
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert keys == {"tickets/input", "tickets/submission", "tickets/results"}
    graph = defs.resolve_asset_graph()
    submission = graph.get(dg.AssetKey(["tickets", "submission"]))
    results = graph.get(dg.AssetKey(["tickets", "results"]))
    assert submission.code_version == results.code_version == spec_version(spec)
    assert submission.pools == {"batch_pipelines/submit"}
    assert submission.parent_keys == {dg.AssetKey(["tickets", "input"])}
    assert "openai" in submission.kinds
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {
        "ids_unique",
        "every_input_item_accounted_for",
        "responses_match_schema",
        "dead_letter_share_within_threshold",
    }
    sensor = defs.resolve_sensor_def("tickets_completion_sensor")
    assert sensor.job_name == "tickets_results_job"
    assert sensor.minimum_interval_seconds == 60
    assert defs.resolve_job_def("tickets_submit_job").partitions_def is not None
    policy = defs.resolve_assets_def(dg.AssetKey(["tickets", "submission"])).op.retry_policy
    assert (
        policy is not None
        and policy.backoff == dg.Backoff.EXPONENTIAL
        and policy.jitter == dg.Jitter.PLUS_MINUS
    )


def test_changing_the_prompt_changes_the_code_version() -> None:
    engine = BatchEngineResource()
    before = build_pipeline_defs(ticket_spec(), batch_engine=engine).resolve_asset_graph()
    after = build_pipeline_defs(
        ticket_spec(prompt={"user": "Only {subject}"}), batch_engine=engine
    ).resolve_asset_graph()
    key = dg.AssetKey(["tickets", "submission"])
    assert before.get(key).code_version != after.get(key).code_version


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mode": "auto"}, "urgent"),
        ({"mode": "streaming"}, "mode"),
        ({"prompt": {"user": "{a.b}"}}, "prompt.user"),
        ({"provider": "x"}, "provider"),
    ],
)
def test_bad_yaml_declaration_fails_loading_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            component_cls=BatchPipelineComponent, defs_yaml_contents=component_yaml(**changes)
        )
        # Dagster wraps our error in its own; the chain below finds ours.
        with pytest.raises(Exception) as raised, sandbox.load_component_and_build_defs(defs_path=path):
            pass
    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    spec_errors = [e for e in chain if isinstance(e, PipelineSpecError)]
    assert spec_errors, chain
    assert f"field '{field}'" in str(spec_errors[0])
    assert str(Path(path).name) in str(spec_errors[0])
