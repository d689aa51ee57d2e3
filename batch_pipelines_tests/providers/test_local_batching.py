"""Dynamic batching: passes within a padded-token budget, length sorting, halving on out-of-memory."""

from __future__ import annotations

import random

import pytest

from batch_pipelines.providers.local.batching import AdaptiveBatcher, plan_passes


def padded_tokens(passes: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in group) * len(group) for group in passes)


def test_every_item_lands_in_exactly_one_pass_within_the_budget() -> None:
    lengths = [random.Random(3).randint(1, 200) for _ in range(500)]
    passes = plan_passes(lengths, token_budget=2_000, max_batch_size=64)
    assert sorted(i for group in passes for i in group) == list(range(500))
    for group in passes:
        assert len(group) <= 64
        assert max(lengths[i] for i in group) * len(group) <= 2_000


def test_an_item_longer_than_the_budget_gets_a_pass_of_its_own() -> None:
    passes = plan_passes([10, 5_000, 10], token_budget=1_000, max_batch_size=8)
    assert [1] in passes
    assert sorted(i for group in passes for i in group) == [0, 1, 2]


def test_sorting_by_length_cuts_padding() -> None:
    generator = random.Random(11)
    lengths = [generator.choice((8, 16, 250)) for _ in range(256)]
    sorted_passes = plan_passes(lengths, token_budget=10**9, max_batch_size=32, sort_by_length=True)
    unsorted_passes = plan_passes(lengths, token_budget=10**9, max_batch_size=32, sort_by_length=False)
    assert padded_tokens(sorted_passes, lengths) < 0.7 * padded_tokens(unsorted_passes, lengths)
    assert unsorted_passes[0] == list(range(32))  # unsorted keeps the input order


class MemoryLimitedEncoder:
    """A device that holds at most ``capacity`` padded tokens per pass (stands in for GPU memory)."""

    def __init__(self, capacity: int, lengths: dict[str, int]) -> None:
        self.capacity = capacity
        self.lengths = lengths
        self.pass_sizes: list[int] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        padded = max(self.lengths[text] for text in texts) * len(texts)
        if padded > self.capacity:
            raise MemoryError(f"{padded} padded tokens do not fit")
        self.pass_sizes.append(len(texts))
        return [[float(self.lengths[text])] for text in texts]


def test_out_of_memory_halves_the_budget_and_every_item_is_still_embedded() -> None:
    texts = [f"item {i}" for i in range(200)]
    lengths = [20 + i % 30 for i in range(200)]
    device = MemoryLimitedEncoder(capacity=600, lengths=dict(zip(texts, lengths, strict=True)))
    batcher = AdaptiveBatcher(device, token_budget=100_000, max_batch_size=128)

    outcomes = list(batcher.run(texts, lengths))

    assert batcher.out_of_memory_events >= 1
    assert batcher.token_budget <= 600  # it settled on something the device holds
    embedded = {i: vector for o in outcomes for i, vector in zip(o.indices, o.vectors or [], strict=True)}
    assert sorted(embedded) == list(range(200))
    assert all(embedded[i] == [float(lengths[i])] for i in range(200))  # each vector is its own item's
    assert all(o.error is None for o in outcomes)

    learned = batcher.out_of_memory_events
    again = list(batcher.run(texts, lengths))  # the learned budget is kept: no more failures
    assert batcher.out_of_memory_events == learned
    assert sorted(i for o in again for i in o.indices) == list(range(200))


def test_an_item_too_big_even_alone_fails_by_itself() -> None:
    texts = ["small", "huge", "tiny"]
    lengths = [10, 900, 12]
    device = MemoryLimitedEncoder(capacity=500, lengths=dict(zip(texts, lengths, strict=True)))
    outcomes = list(AdaptiveBatcher(device, token_budget=10_000, max_batch_size=8).run(texts, lengths))

    failed = [o for o in outcomes if o.error is not None]
    assert [o.indices for o in failed] == [[1]]
    assert "900 tokens" in (failed[0].error or "")
    assert sorted(i for o in outcomes if o.vectors is not None for i in o.indices) == [0, 2]


def test_other_errors_are_not_mistaken_for_out_of_memory() -> None:
    def broken(texts: list[str]) -> list[list[float]]:
        raise ValueError("tokenizer exploded")

    with pytest.raises(ValueError, match="tokenizer exploded"):
        list(AdaptiveBatcher(broken, token_budget=100, max_batch_size=4).run(["a", "b"], [1, 1]))
