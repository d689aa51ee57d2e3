"""Partition keys become file names, so they are checked before they touch the file system."""

from __future__ import annotations

import re

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}$")


def check_partition_key(key: str) -> str:
    """Return `key` if it is safe as a single file name (no separators, no `..`), else raise ValueError."""
    if not _SAFE_KEY.match(key) or ".." in key:
        raise ValueError(
            f"partition key {key!r} must start with a letter or digit and contain only letters, digits, "
            "'_', '-', '.', '=' (no path separators or '..')"
        )
    return key
