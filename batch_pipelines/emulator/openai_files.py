"""OpenAI's Files API: upload (multipart), list, retrieve, delete, content."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batch_pipelines.emulator.errors import ApiError, invalid, not_found
from batch_pipelines.emulator.multipart_upload import receive_form
from batch_pipelines.emulator.paging import int_param, page_envelope
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.store import StoredFile

PURPOSES = ("batch", "batch_output", "fine-tune", "assistants", "vision", "user_data", "evals")
UPLOAD_OVERHEAD_BYTES = 64 * 1024  # room for the multipart envelope around the file itself


class FileRoutes:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def get(self, file_id: str) -> StoredFile:
        stored = self.runtime.store.files.get(file_id)
        if stored is None:
            raise not_found(f"No such File object: {file_id}", param="id")
        return stored

    async def upload(self, request: Request) -> Response:
        limit = self.runtime.config.limits.openai_max_file_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit + UPLOAD_OVERHEAD_BYTES:
            # Read the body away before answering: a client still sending would see a broken pipe, not a 413.
            async for _ in request.stream():
                pass
            raise _too_large(limit)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise invalid("The request must be multipart/form-data with 'file' and 'purpose' fields.", "file")
        form = await receive_form(request, limit)
        upload = form.content if form.file_field == "file" else None
        purpose = form.fields.get("purpose")
        anchor = form.fields.get("expires_after[anchor]")
        seconds = form.fields.get("expires_after[seconds]")
        if upload is None:
            raise invalid(
                "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
            )
        if not purpose:
            raise invalid(
                "Missing required parameter: 'purpose'.", "purpose", code="missing_required_parameter"
            )
        if purpose not in PURPOSES or purpose == "batch_output":
            raise invalid(f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        filename = form.filename or "upload.jsonl"
        if form.file_bytes > limit:
            raise _too_large(limit)
        expires_after = None
        if anchor is not None or seconds is not None:
            if anchor != "created_at" or not isinstance(seconds, str) or not seconds.isdigit():
                raise invalid(
                    "'expires_after' needs anchor 'created_at' and integer seconds.", "expires_after"
                )
            expires_after = int(seconds)
            if not 3600 <= expires_after <= 2_592_000:
                raise invalid(
                    "'expires_after.seconds' must be between 3600 and 2592000.", "expires_after.seconds"
                )
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise invalid("Invalid file format for Batch API. Must be .jsonl", param="file")
        stored = self.runtime.store.add_file(filename, purpose, bytes(upload), expires_after)
        return JSONResponse(stored.to_api())

    async def list(self, request: Request) -> Response:
        query = request.query_params
        purpose = query.get("purpose")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid(f"Invalid value for 'order': {order!r}. Expected 'asc' or 'desc'.", param="order")
        limit = int_param(query.get("limit"), "limit", default=10_000, low=1, high=10_000)
        files = [f for f in self.runtime.store.files.values() if purpose is None or f.purpose == purpose]
        files.sort(key=lambda f: (f.created_at, f.id), reverse=order == "desc")
        after = query.get("after")
        if after:
            ids = [f.id for f in files]
            files = files[ids.index(after) + 1 :] if after in ids else []
        page = files[:limit]
        return JSONResponse(page_envelope([f.to_api() for f in page], has_more=len(files) > limit))

    async def retrieve(self, request: Request) -> Response:
        return JSONResponse(self.get(request.path_params["file_id"]).to_api())

    async def delete(self, request: Request) -> Response:
        stored = self.get(request.path_params["file_id"])
        self.runtime.store.delete_file(stored.id)
        return JSONResponse({"id": stored.id, "object": "file", "deleted": True})

    async def content(self, request: Request) -> Response:
        stored = self.get(request.path_params["file_id"])
        return Response(self.runtime.store.contents[stored.id], media_type="application/octet-stream")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"File is too large. The maximum size for a file is {limit} bytes.", param="file")
