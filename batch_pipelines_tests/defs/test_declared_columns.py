"""Loading the code location (what `dg check defs` does) refuses a pipeline whose prompt, id or partition
column is missing from the source, when the source's header can be read: before any run fails on it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

DECLARATION = {
    "name": "tickets",
    "source": {"path": "data/*.csv"},
    "partitions": {"static": {"column": "region", "keys": ["eu"]}},
    "id_column": "ticket_id",
    "prompt": {"system": "Triage.", "user": "{subject}: {body}"},
    "provider": "openai",
    "model": "gpt-4o-mini",
}


def load_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declaration: dict[str, object]) -> Path:
    """A dg project under `tmp_path` with one pipeline, loaded as `dg check defs` loads it (its package
    named after the test, as Python keeps every package it imported)."""
    package = "checked_" + "".join(char if char.isalnum() else "_" for char in tmp_path.name)
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "{package}"\nversion = "0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{package}"\nregistry_modules = ["batch_pipelines.components.*"]\n'
    )
    folder = tmp_path / package / "defs" / "tickets"
    folder.mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "defs" / "__init__.py").write_text("")
    (tmp_path / package / "defs" / "resources.py").write_text(
        "from batch_pipelines.defs.resources import resources\n\n__all__ = ['resources']\n"
    )
    component = {"type": "batch_pipelines.components.BatchPipelineComponent", "attributes": declaration}
    (folder / "defs.yaml").write_text(yaml.safe_dump(component))
    monkeypatch.setenv("BATCH_PIPELINES_HOME", str(tmp_path / "work"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return folder


def root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def test_a_prompt_column_missing_from_the_csv_header_fails_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "work" / "data"
    data.mkdir(parents=True)
    (data / "tickets.csv").write_text("ticket_id,region,subject\nt1,eu,Late parcel\n")
    folder = load_project(tmp_path, monkeypatch, DECLARATION)
    with pytest.raises(Exception) as raised:
        dg.load_from_defs_folder(path_within_project=folder.parent)
    assert str(root_cause(raised.value)) == (
        f"invalid pipeline 'tickets' (declared in {folder}):\n"
        "  field 'prompt': the source has no column 'body'\n"
        f"  (the source {data / 'tickets.csv'} has: ticket_id, region, subject)"
    )


def test_id_and_partition_columns_missing_from_a_parquet_footer_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "work" / "data"
    data.mkdir(parents=True)
    pl.DataFrame({"id": ["t1"], "subject": ["s"], "body": ["b"]}).write_parquet(data / "tickets.parquet")
    folder = load_project(tmp_path, monkeypatch, {**DECLARATION, "source": {"path": "data/*.parquet"}})
    with pytest.raises(Exception) as raised:
        dg.load_from_defs_folder(path_within_project=folder.parent)
    message = str(root_cause(raised.value))
    assert "  field 'id_column': the source has no column 'ticket_id'\n" in message
    assert "  field 'partitions': the source has no column 'region'\n" in message


def test_a_source_with_no_file_yet_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = load_project(tmp_path, monkeypatch, DECLARATION)
    defs = dg.load_from_defs_folder(path_within_project=folder.parent)
    assert "tickets/input" in {key.to_user_string() for key in defs.resolve_all_asset_keys()}
