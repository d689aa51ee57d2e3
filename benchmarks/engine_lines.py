"""Engine line handling at scale: render+split input files, and parse result files, versus bare json.

Each phase runs in its own subprocess so its peak memory (``ru_maxrss``) is its own; each runs
``--repeat`` times, interleaved, and the fastest run counts. The baseline does
only ``json.dumps`` of the same input lines and ``json.loads`` of the same result lines. Target: engine
time ≤ 1.5× baseline and peak memory < 1 GB for 1,000,000 requests.

    .venv/bin/python benchmarks/engine_lines.py [--requests N]

The last line reads ``render_ratio=<x> parse_ratio=<y> peak_mb=<z>``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MODEL = "gpt-4o-mini"
PER_FILE = 50_000


def prompt(index: int) -> str:
    return f"Classify support ticket {index}: the printer on floor {index % 7} is jammed again, please help."


def request_lines(count: int) -> Iterator[dict[str, object]]:
    for index in range(count):
        yield {
            "custom_id": f"req-{index:07d}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": prompt(index)}]},
        }


def result_line(index: int) -> str:
    return json.dumps(
        {
            "id": f"batch_req_{index}",
            "custom_id": f"req-{index:07d}",
            "response": {
                "status_code": 200,
                "request_id": f"req_{index}",
                "body": {
                    "id": f"chatcmpl-{index}",
                    "object": "chat.completion",
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "hardware"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 31, "completion_tokens": 2, "total_tokens": 33},
                },
            },
            "error": None,
        }
    )


def write_result_files(directory: Path, count: int) -> None:
    for start in range(0, count, PER_FILE):
        with (directory / f"out-{start // PER_FILE:05d}.jsonl").open("w") as handle:
            for index in range(start, min(start + PER_FILE, count)):
                handle.write(result_line(index) + "\n")


def render_baseline(count: int, _directory: Path) -> int:
    total = 0
    for line in request_lines(count):
        total += len(json.dumps(line))
    return total


def render_engine(count: int, directory: Path) -> int:
    from batch_pipelines.engine.models import BatchRequest
    from batch_pipelines.engine.splitting import ChunkSplitter
    from batch_pipelines.providers.openai import OpenAIProvider

    provider = OpenAIProvider(MODEL, base_url="http://127.0.0.1:9/v1", api_key="benchmark")
    splitter = ChunkSplitter(directory, provider.limits, lambda request: provider.render_line(request, None))
    for index in range(count):
        request = BatchRequest(id=f"req-{index:07d}", messages=[{"role": "user", "content": prompt(index)}])
        splitter.add(request)
    return len(splitter.finish())


def parse_baseline(_count: int, directory: Path) -> int:
    parsed = 0
    for path in sorted(directory.glob("out-*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                json.loads(line)
                parsed += 1
    return parsed


def parse_engine(_count: int, directory: Path) -> int:
    from batch_pipelines.engine.pricing import price_for
    from batch_pipelines.engine.results import ResultFinisher
    from batch_pipelines.providers.openai import OpenAIProvider

    provider = OpenAIProvider(MODEL, base_url="http://127.0.0.1:9/v1", api_key="benchmark")
    parsed = 0
    for file_index, path in enumerate(sorted(directory.glob("out-*.jsonl"))):
        start = file_index * PER_FILE
        members = {f"req-{i:07d}" for i in range(start, start + PER_FILE)}  # the store's id set per batch
        finisher = ResultFinisher(
            price=price_for(MODEL), response_schema=None, attempt=1, provider_batch_id=f"batch_{file_index}"
        )
        page = []
        with path.open("rb") as handle:
            for line in handle:
                result = provider.parse_result_line(line)
                if result.id in members:
                    page.append(finisher.finish(result))
                if len(page) >= 2000:  # the manager upserts pages of this size
                    parsed += len(page)
                    page = []
        parsed += len(page)
    return parsed


PHASES = {
    "render-baseline": render_baseline,
    "render-engine": render_engine,
    "parse-baseline": parse_baseline,
    "parse-engine": parse_engine,
}


def run_phase(name: str, count: int, directory: Path) -> None:
    if name.endswith("engine"):  # imports are not what is measured
        import batch_pipelines.engine.results
        import batch_pipelines.engine.splitting
        import batch_pipelines.providers.openai  # noqa: F401
    started, cpu_started = time.perf_counter(), time.process_time()
    PHASES[name](count, directory)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mb": peak_mb}))


def measure(name: str, count: int, directory: Path) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--requests", str(count), "--phase", name, "--dir", str(directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase; the fastest one counts")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.requests, args.dir)
        return
    with tempfile.TemporaryDirectory(prefix="engine-lines-") as tmp:
        results_dir = Path(tmp) / "results"
        results_dir.mkdir()
        write_result_files(results_dir, args.requests)
        figures = {
            name: {"seconds": float("inf"), "cpu_seconds": float("inf"), "peak_mb": 0.0} for name in PHASES
        }
        for run in range(args.repeat):
            for name in PHASES:  # interleaved, so a busy moment hurts engine and baseline alike
                work = Path(tmp) / f"{name}-{run}"
                work.mkdir()
                values = measure(name, args.requests, results_dir if name.startswith("parse") else work)
                figures[name]["seconds"] = min(figures[name]["seconds"], values["seconds"])
                figures[name]["cpu_seconds"] = min(figures[name]["cpu_seconds"], values["cpu_seconds"])
                figures[name]["peak_mb"] = max(figures[name]["peak_mb"], values["peak_mb"])
                shutil.rmtree(work)
    print(f"{args.requests:,} requests, best of {args.repeat} runs per phase")
    for name, values in figures.items():
        print(
            f"  {name:16s} wall {values['seconds']:7.2f} s   cpu {values['cpu_seconds']:7.2f} s"
            f"   peak {values['peak_mb']:7.1f} MB"
        )
    # Ratios of CPU time: the phases are CPU-bound, and CPU time is not inflated by other processes
    # competing for the same cores the way wall time is.
    render_ratio = figures["render-engine"]["cpu_seconds"] / figures["render-baseline"]["cpu_seconds"]
    parse_ratio = figures["parse-engine"]["cpu_seconds"] / figures["parse-baseline"]["cpu_seconds"]
    peak = max(figures["render-engine"]["peak_mb"], figures["parse-engine"]["peak_mb"])
    print(f"render_ratio={render_ratio:.2f} parse_ratio={parse_ratio:.2f} peak_mb={peak:.0f}")


if __name__ == "__main__":
    main()
