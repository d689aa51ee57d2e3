"""Scratch folders (chunk files, staged CSV, spooled results) left by a killed process are removed by the
next process that makes one, and a folder another live process is using is left alone."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from batch_pipelines.scratch import scratch_folder

HOLD = """
import sys, time
from pathlib import Path
from batch_pipelines.scratch import scratch_folder
with scratch_folder(Path(sys.argv[1]), "batch-") as folder:
    (folder / "chunk-00000.jsonl").write_text("{}")
    print(folder, flush=True)
    time.sleep(600)
"""


def holder(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process holding a scratch folder under ``parent``, and the folder."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(parent)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_holders_folder_goes_and_a_live_holders_stays(tmp_path: Path) -> None:
    killed, abandoned = holder(tmp_path)
    alive, in_use = holder(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        assert (abandoned / "chunk-00000.jsonl").exists()  # SIGKILL leaves it

        with scratch_folder(tmp_path, "batch-") as mine:
            assert mine.is_dir()
            assert not abandoned.exists()
            assert (in_use / "chunk-00000.jsonl").exists()
        assert not mine.exists()
        assert [path.name for path in tmp_path.iterdir()] == [in_use.name]
    finally:
        alive.kill()
        alive.wait(timeout=60)


def test_folders_of_another_kind_are_not_touched(tmp_path: Path) -> None:
    killed, abandoned = holder(tmp_path)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    with scratch_folder(tmp_path, ".collecting-"):
        pass
    assert abandoned.exists()
