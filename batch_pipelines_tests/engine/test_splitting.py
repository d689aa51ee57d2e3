import json
from pathlib import Path

import pytest

from batch_pipelines.engine.limits import BatchLimits, estimate_tokens
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.engine.splitting import ChunkSplitter, RequestTooLargeError
from batch_pipelines.providers.openai import OpenAIProvider


def _provider(limits: BatchLimits) -> OpenAIProvider:
    return OpenAIProvider("gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-test", limits=limits)


def _requests(count: int, text: str = "hello") -> list[BatchRequest]:
    return [BatchRequest(id=f"r{i}", messages=[{"role": "user", "content": text}]) for i in range(count)]


def _split(tmp_path: Path, limits: BatchLimits, requests: list[BatchRequest]) -> ChunkSplitter:
    provider = _provider(limits)
    splitter = ChunkSplitter(tmp_path, limits, lambda r: provider.render_line(r, None))
    for request in requests:
        splitter.add(request)
    splitter.finish()
    return splitter


def test_splits_at_request_count(tmp_path: Path) -> None:
    splitter = _split(tmp_path, BatchLimits(max_requests=3, max_bytes=10**9), _requests(7))
    assert [c.request_count for c in splitter.chunks] == [3, 3, 1]


def test_splits_at_bytes_even_when_count_allows(tmp_path: Path) -> None:
    requests = _requests(10, "x" * 200)
    line_size = len(_provider(BatchLimits(10, 10**9)).render_line(requests[0], None))
    limits = BatchLimits(max_requests=1000, max_bytes=line_size * 4 + 10)
    splitter = _split(tmp_path, limits, requests)
    assert [c.request_count for c in splitter.chunks] == [4, 4, 2]
    for chunk in splitter.chunks:
        assert chunk.path.stat().st_size == chunk.byte_count <= limits.max_bytes


def test_splits_at_enqueued_tokens(tmp_path: Path) -> None:
    requests = _requests(9, "y" * 400)
    per_request = estimate_tokens(requests[0])
    limits = BatchLimits(max_requests=1000, max_bytes=10**9, max_enqueued_tokens=per_request * 2)
    splitter = _split(tmp_path, limits, requests)
    assert [c.request_count for c in splitter.chunks] == [2, 2, 2, 2, 1]
    assert all(c.est_tokens <= limits.max_enqueued_tokens for c in splitter.chunks)  # type: ignore[operator]


def test_files_hold_every_request_once_in_order(tmp_path: Path) -> None:
    splitter = _split(tmp_path, BatchLimits(max_requests=4, max_bytes=10**9), _requests(10))
    ids = [json.loads(line)["custom_id"] for c in splitter.chunks for line in c.path.read_text().splitlines()]
    assert ids == [f"r{i}" for i in range(10)]


def test_single_request_over_the_byte_limit_is_named(tmp_path: Path) -> None:
    with pytest.raises(RequestTooLargeError, match="'r0'"):
        _split(tmp_path, BatchLimits(max_requests=10, max_bytes=50), _requests(1, "z" * 100))


def test_token_estimate_grows_with_text() -> None:
    short, long = _requests(1, "a" * 40)[0], _requests(1, "a" * 4000)[0]
    assert estimate_tokens(long) - estimate_tokens(short) == (4000 - 40) // 4
