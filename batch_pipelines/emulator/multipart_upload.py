"""Receive a multipart/form-data upload chunk by chunk, straight into memory, on the event loop.

Starlette's form parser spools a file part to a temporary file and writes every chunk through the thread
pool: hundreds of thread hops for one large file, each a wait for the GIL while the emulator checks or
answers another batch in a worker thread (18-31 s to receive 500 MB). Here each chunk the server hands
over is parsed by python-multipart and its file bytes appended to a buffer, with no hop at all.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from batch_pipelines.emulator.errors import invalid

MAX_FILES = 1
MAX_FIELDS = 16
MAX_FIELD_BYTES = 1024 * 1024


@dataclass
class UploadedForm:
    """The text fields and the one file of a form; ``file_bytes`` counts even what was not kept."""

    fields: dict[str, str] = field(default_factory=dict)
    file_field: str | None = None
    filename: str | None = None
    content: bytearray = field(default_factory=bytearray)
    file_bytes: int = 0


class _FormBuilder:
    """python-multipart callbacks that fill an ``UploadedForm``, keeping at most ``max_file_bytes``."""

    def __init__(self, charset: str, max_file_bytes: int) -> None:
        self.form = UploadedForm()
        self.charset = charset
        self.max_file_bytes = max_file_bytes
        self._files = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._in_file = False
        self._field = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._field = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise invalid('Every multipart part needs a Content-Disposition "name".', param="file")
        self._name = options[b"name"].decode(self.charset, errors="replace")
        self._in_file = b"filename" in options
        if self._in_file:
            self._files += 1
            if self._files > MAX_FILES:
                raise invalid(f"Too many files. Maximum number of files is {MAX_FILES}.", param="file")
            self.form.file_field = self._name
            self.form.filename = options[b"filename"].decode(self.charset, errors="replace")
        elif len(self.form.fields) >= MAX_FIELDS:
            raise invalid(f"Too many fields. Maximum number of fields is {MAX_FIELDS}.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.form.file_bytes += end - start
            if self.form.file_bytes <= self.max_file_bytes:
                self.form.content += data[start:end]
            return
        if len(self._field) + end - start > MAX_FIELD_BYTES:
            raise invalid(f"Field {self._name!r} exceeds {MAX_FIELD_BYTES // 1024} KB.", param=self._name)
        self._field += data[start:end]

    def on_part_end(self) -> None:
        if not self._in_file:
            self.form.fields[self._name] = self._field.decode(self.charset, errors="replace")


async def receive_form(request: Request, max_file_bytes: int) -> UploadedForm:
    """Parse the request body as it arrives. A file past ``max_file_bytes`` is read to its end but not
    kept (its ``file_bytes`` tells the caller), so the client sees an answer, not a broken pipe."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise invalid("The multipart body has no boundary in its Content-Type.", param="file")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    builder = _FormBuilder(charset, max_file_bytes)
    parser = MultipartParser(boundary, builder.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        raise invalid(f"Invalid multipart body: {error}", param="file") from None
    return builder.form
