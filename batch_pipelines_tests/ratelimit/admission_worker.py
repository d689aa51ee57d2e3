"""One of several processes drawing on one limiter; writes every admission it got to a file.

Run by test_cross_process.py: ``python admission_worker.py SETTINGS_JSON OUTPUT_PATH``. Each admission
reserves an over-estimate and then settles to the "actual" tokens, the way a real caller would.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from batch_pipelines.ratelimit import RateLimiter


def main(settings_json: str, output_path: str) -> None:
    settings = json.loads(settings_json)
    limiter = RateLimiter.from_url(settings["url"], key=settings["key"], **settings["limits"])
    chooser = random.Random(settings["seed"])
    admissions: list[tuple[float, int]] = []
    time.sleep(max(0.0, settings["start_at"] - time.time()))
    while time.time() < settings["stop_at"]:
        actual_tokens = chooser.randint(settings["min_tokens"], settings["max_tokens"])
        reservation = limiter.acquire_sync(actual_tokens + settings["overestimate_tokens"])
        limiter.settle_sync(reservation, actual_tokens)
        admissions.append((reservation.admitted_at, actual_tokens))
    Path(output_path).write_text(json.dumps({"admissions": admissions, "decisions": limiter.decisions}))
    limiter.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
