"""A read-only S3 filesystem confined to a few prefixes: what `batch-pipelines query` lets DuckDB open.

DuckDB's `allowed_directories` compares the text of an s3:// path, so `…/results/../../other` passes it,
and a path allowed for reading is allowed for `COPY … TO` as well. This wrapper closes both: a path with
a `.`/`..` segment or outside the prefixes is refused, and only reads are implemented (fsspec's writing,
removing and moving helpers end in primitives this class does not provide).
"""

from __future__ import annotations

from typing import Any

from fsspec import AbstractFileSystem


class ConfinedReadOnlyS3(AbstractFileSystem):
    """Reads through ``inner`` (an s3 fsspec filesystem) under ``prefixes`` (``bucket/key/prefix``)."""

    protocol = ("s3",)
    root_marker = ""
    cachable = False

    def __init__(self, inner: AbstractFileSystem, prefixes: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = inner
        self.prefixes = [prefix.strip("/") for prefix in prefixes]

    def _checked(self, path: str) -> str:
        key = self._strip_protocol(path).strip("/")
        segments = key.split("/")
        if any(segment in ("", ".", "..") for segment in segments):
            raise PermissionError(f"s3://{key}: relative or empty path segments are not allowed")
        if not any(key == prefix or key.startswith(prefix + "/") for prefix in self.prefixes):
            raise PermissionError(f"s3://{key} is outside the tables this query may read")
        return key

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"s3://{path}: this query may only read (mode {mode!r} refused)")
        return self.inner._open(self._checked(path), mode="rb", **kwargs)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return self.inner.ls(self._checked(path), detail=detail, **kwargs)

    def info(self, path: str, **kwargs: Any) -> Any:
        return self.inner.info(self._checked(path), **kwargs)

    def modified(self, path: str) -> Any:
        return self.inner.modified(self._checked(path))
