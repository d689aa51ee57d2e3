"""Scratch folders in a working folder that a killed process does not leave behind for good.

Chunk files, staged CSV partitions and spooled results can run to gigabytes. A process killed while it
holds one (SIGKILL, the OOM killer, a lost node) cannot remove it, so each folder carries a lock file
its owner holds while it works: the next process to make a folder of the same kind there removes every
folder of that kind whose lock it can take, since the kernel drops a lock when its holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".in-use"


@contextlib.contextmanager
def scratch_folder(parent: Path | None, prefix: str) -> Iterator[Path]:
    """A new folder ``parent/<prefix>…`` (the system temp folder when ``parent`` is None), removed on
    exit; abandoned ones of the same prefix are removed first."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(Path(parent or tempfile.gettempdir()), prefix)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent, ignore_cleanup_errors=True) as name:
        folder = Path(name)
        # Locked before it takes its name, so a cleaner never sees the lock file unlocked while we live.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lock-", delete=False) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            except OSError:  # a filesystem without locks: work as before, the folder just is not reclaimed
                logger.debug("no file locks in %s; a killed run's scratch folder stays", parent)
            else:
                os.replace(lock.name, folder / LOCK_NAME)
            yield folder


def remove_abandoned(parent: Path, prefix: str) -> None:
    for folder in parent.glob(f"{prefix}*"):
        try:
            with (folder / LOCK_NAME).open("rb") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder, ignore_errors=True)
                logger.info("removed %s, left by a process that died while using it", folder)
        except OSError:
            continue  # not ours, still being set up, in use, or on a filesystem without locks
