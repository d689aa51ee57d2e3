from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import write_parquet_atomic
from batch_pipelines.workdir import WORKDIR_ENV, resolve_workdir


@pytest.mark.parametrize("key", ["../escape", "..", "a/b", "/etc/passwd", "", ".hidden", "a\\b"])
def test_partition_keys_cannot_leave_the_pipeline_folder(tmp_path: Path, key: str) -> None:
    layout = StorageLayout.for_workdir(tmp_path)
    with pytest.raises(ValueError, match="partition key"):
        layout.partition_path("results", "tickets", key)


def test_results_live_under_the_results_root(tmp_path: Path) -> None:
    default = StorageLayout.for_workdir(tmp_path)
    assert (
        default.partition_path("results", "tickets", "2026-11-01")
        == tmp_path / "results/tickets/2026-11-01.parquet"
    )
    custom = StorageLayout.for_workdir(tmp_path, "/srv/answers")
    assert custom.partition_path("results", "tickets", "eu") == Path("/srv/answers/tickets/eu.parquet")
    assert (
        custom.partition_path("dead_letters", "tickets", "eu") == tmp_path / "dead_letters/tickets/eu.parquet"
    )


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "results" / "p" / "k.parquet"
    write_parquet_atomic(pl.DataFrame({"id": ["a", "b", "c"]}), path)
    write_parquet_atomic(pl.DataFrame({"id": ["z"]}), path)
    assert pl.read_parquet(path)["id"].to_list() == ["z"]
    assert [entry.name for entry in path.parent.iterdir()] == ["k.parquet"]


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "k.parquet"
    write_parquet_atomic(pl.DataFrame({"id": ["kept"]}), path)
    unwritable = pl.DataFrame({"value": [object()]}, schema={"value": pl.Object})
    with pytest.raises(Exception):  # noqa: B017 - polars refuses Object columns; which error is its business
        write_parquet_atomic(unwritable, path)
    assert pl.read_parquet(path)["id"].to_list() == ["kept"]
    assert [entry.name for entry in tmp_path.iterdir()] == ["k.parquet"]


def test_workdir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(WORKDIR_ENV, raising=False)
    assert resolve_workdir() == tmp_path / ".batch_pipelines"
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path / "from_env"))
    assert resolve_workdir() == tmp_path / "from_env"
    assert resolve_workdir("explicit") == tmp_path / "explicit"
