"""The emulator's batch file path: upload, batch create -> completed, output download, old code beside new.

Starts one emulator per code tree (this checkout, and with --baseline-pythonpath another one, e.g. an
export of main), and against each: uploads N files of 50,000 request lines with the official openai SDK
(from open file handles, as benchmarks/million_baseline.py does) and one more with httpx, creating each
batch right after its upload (so the emulator checks file k while file k+1 arrives, as in million.py);
then polls every batch until completed, timing the slowest status call; then downloads every output file.

    .venv/bin/python benchmarks/emulator_files.py --files 4 --baseline-pythonpath /tmp/main-export

The last line gives baseline/current ratios (above 1: the current code is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai

from batch_pipelines.emulator.process import EmulatorProcess

# As benchmarks/million.py: no enqueued-token limit, provider processing near-instant.
EMULATOR_CONFIG = {"limits": {"openai_enqueued_tokens": 10**13}}
TIME_SCALE = 1e-4
PROMPT = "the printer on floor three keeps jamming whenever it prints double-sided pages; "


def write_input(path: Path, index: int, lines: int) -> None:
    with path.open("w") as handle:
        for row in range(lines):
            body = {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Label the support ticket."},
                    {"role": "user", "content": f"Ticket {index}-{row}: " + PROMPT * 4},
                ],
                "max_tokens": 32,
            }
            line = {"custom_id": f"f{index}-r{row}", "method": "POST", "url": "/v1/chat/completions"}
            handle.write(json.dumps({**line, "body": body}) + "\n")


@contextmanager
def emulator_from(pythonpath: str) -> Iterator[EmulatorProcess]:
    """An emulator process importing batch_pipelines from ``pythonpath`` (started there too: ``python -m``
    puts its working directory ahead of PYTHONPATH)."""
    saved_path, saved_cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = pythonpath
    os.chdir(pythonpath)
    try:
        emulator = EmulatorProcess(EMULATOR_CONFIG, time_scale=TIME_SCALE, seed=1).start()
    finally:
        os.chdir(saved_cwd)
        if saved_path is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved_path
    try:
        yield emulator
    finally:
        emulator.stop()


def measure(emulator: EmulatorProcess, inputs: list[Path]) -> dict[str, float]:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-bench", max_retries=0, timeout=600)
    megabytes = sum(path.stat().st_size for path in inputs) / 1e6
    upload_s = 0.0
    batch_ids = []
    for path in inputs:
        started = time.perf_counter()
        with path.open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="batch")
        upload_s += time.perf_counter() - started
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batch_ids.append(batch.id)
    created = time.perf_counter()
    started = time.perf_counter()
    with inputs[0].open("rb") as handle:
        response = httpx.post(
            f"{emulator.openai_base_url}/files",
            headers={"Authorization": "Bearer sk-bench"},
            files={"file": (inputs[0].name, handle)},
            data={"purpose": "batch"},
            timeout=600,
        )
    response.raise_for_status()
    httpx_s = time.perf_counter() - started
    slowest_status_s = 0.0
    outputs: dict[str, str] = {}
    while len(outputs) < len(batch_ids):
        for batch_id in batch_ids:
            if batch_id in outputs:
                continue
            asked = time.perf_counter()
            batch = client.batches.retrieve(batch_id)
            slowest_status_s = max(slowest_status_s, time.perf_counter() - asked)
            if batch.status == "completed" and batch.output_file_id:
                outputs[batch_id] = batch.output_file_id
            elif batch.status in ("failed", "expired", "cancelled"):
                raise RuntimeError(f"batch {batch_id} ended {batch.status}")
        time.sleep(0.05)
    completed_s = time.perf_counter() - created
    started = time.perf_counter()
    downloaded = sum(len(client.files.content(file_id).read()) for file_id in outputs.values())
    download_s = time.perf_counter() - started
    return {
        "upload_sdk_s": upload_s,
        "upload_mb_s": megabytes / upload_s,
        "upload_httpx_one_s": httpx_s,
        "completed_s": completed_s,
        "slowest_status_s": slowest_status_s,
        "download_s": download_s,
        "download_mb": downloaded / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--baseline-pythonpath", help="a checkout whose emulator is the baseline")
    args = parser.parse_args()
    current = str(Path(__file__).resolve().parents[1])
    sides = {"current": current}
    if args.baseline_pythonpath:
        sides = {"baseline": str(Path(args.baseline_pythonpath).resolve()), **sides}
    with tempfile.TemporaryDirectory(prefix="emulator-files-") as folder:
        inputs = [Path(folder) / f"input-{index}.jsonl" for index in range(args.files)]
        for index, path in enumerate(inputs):
            write_input(path, index, args.lines)
        results = {}
        for side, pythonpath in sides.items():
            with emulator_from(pythonpath) as emulator:
                results[side] = measure(emulator, inputs)
            print(side, " ".join(f"{key}={value:.2f}" for key, value in results[side].items()), flush=True)
    if "baseline" in results:
        old, new = results["baseline"], results["current"]
        keys = ("upload_sdk_s", "upload_httpx_one_s", "completed_s", "slowest_status_s", "download_s")
        print(
            " ".join(f"{key.removesuffix('_s')}_ratio={old[key] / max(new[key], 1e-9):.2f}" for key in keys)
        )


if __name__ == "__main__":
    main()
