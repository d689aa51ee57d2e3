"""The second demo's dataset: synthetic product reviews, the same every time, with planted near-duplicates.

Each review is stitched from independent pools (an opening, a praise or complaint about one aspect, a
detail, a verdict), so unrelated reviews differ in most of their words. A few are re-posted with small
edits (case, punctuation) — the near-duplicates the demo finds with DuckDB.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batch_pipelines.storage.parquet_files import write_parquet_atomic

PRODUCTS = ("kettle", "backpack", "headset")
DEFAULT_REVIEWS_PER_PRODUCT = 120
REVIEWS_SEED = 20261122
NEAR_DUPLICATE_SHARE = 0.06
MAX_SHARED_SENTENCES = 2  # of five, between two reviews that are not re-posts of each other
MAX_DRAWS = 200_000  # per product; a few hundred reviews per product fit the pools

_OPENINGS = (
    "Bought the {product} last month for my daily routine.",
    "I was sceptical about the {product} at first.",
    "Got the {product} as a birthday present from my sister.",
    "Replaced my old {product} with this one after it finally died.",
    "Ordered the {product} on a whim during the autumn sale.",
    "We use the {product} in a busy family of five.",
    "Picked the {product} because of the glowing ratings online.",
    "Needed a {product} for travelling between two cities every week.",
)
_ASPECTS = {
    "kettle": (
        "the water boils remarkably fast",
        "the lid hinge squeaks every time",
        "the cord is far too short",
        "the temperature presets are handy for green tea",
        "limescale builds up inside quickly",
    ),
    "backpack": (
        "the shoulder straps are well padded",
        "a zipper broke within three weeks",
        "the laptop sleeve fits a large notebook",
        "rain soaked straight through the fabric",
        "there are clever hidden pockets everywhere",
    ),
    "headset": (
        "noise cancelling blocks out the train completely",
        "the battery lasts barely a day",
        "the ear cushions get hot after an hour",
        "bass is deep without drowning the vocals",
        "pairing with my phone drops constantly",
    ),
}
_DETAILS = (
    "Delivery took nine days, longer than promised.",
    "The packaging was plastic-free, which I appreciate.",
    "Support answered my question within an hour.",
    "The manual was only in German, oddly enough.",
    "It looks more premium than the photos suggest.",
    "The colour is slightly different from the listing.",
    "My neighbour bought the same model after trying mine.",
    "Returning the first unit was painless.",
)
_USES = (
    "I mostly use it early in the morning before work.",
    "It has survived two camping trips so far.",
    "My kids handle it roughly and it copes.",
    "I take it to the office three days a week.",
    "It sits on the counter next to the coffee machine.",
    "I tested it side by side with a friend's older model.",
    "It came along on a long flight to Lisbon.",
    "After six months of use it still feels new.",
)
_VERDICTS = (
    "Would happily buy it again.",
    "Not worth the money in my opinion.",
    "Four stars, minus one for the small flaws.",
    "I returned it and went with a competitor.",
    "Solid value for the price.",
    "Honestly the best purchase I made this year.",
)


@dataclass(frozen=True)
class ReviewsDataset:
    frame: pl.DataFrame
    near_duplicates: list[tuple[str, str]]  # (original review_id, re-posted review_id)


def generate_reviews(
    *, seed: int = REVIEWS_SEED, reviews_per_product: int = DEFAULT_REVIEWS_PER_PRODUCT
) -> ReviewsDataset:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    copies: list[tuple[int, int]] = []  # (row of the original, row of its re-post)
    for product in PRODUCTS:
        first = len(rows)
        written: list[tuple[str, ...]] = []
        for _attempt in range(MAX_DRAWS):
            if len(written) == reviews_per_product:
                break
            sentences = (
                rng.choice(_OPENINGS).format(product=product),
                f"Overall {rng.choice(_ASPECTS[product])}.",
                rng.choice(_USES),
                rng.choice(_DETAILS),
                rng.choice(_VERDICTS),
            )
            if any(_shared(sentences, earlier) > MAX_SHARED_SENTENCES for earlier in written):
                continue  # only the planted re-posts come close to another review
            written.append(sentences)
            rows.append({"product": product, "stars": rng.randint(1, 5), "body": " ".join(sentences)})
        if len(written) < reviews_per_product:
            raise ValueError(
                f"reviews_per_product={reviews_per_product}: the sentence pools hold fewer distinct reviews"
            )
        reposts = max(1, int(reviews_per_product * NEAR_DUPLICATE_SHARE))
        for original in rng.sample(range(first, len(rows)), k=reposts):
            rows.append(dict(rows[original], body=_lightly_edited(str(rows[original]["body"]), rng)))
            copies.append((original, len(rows) - 1))
    order = list(range(len(rows)))
    rng.shuffle(order)  # re-posts do not sit next to their originals
    review_ids = {row: f"R{rank:05d}" for rank, row in enumerate(order, start=1)}
    frame = pl.DataFrame(
        [{"review_id": review_ids[row], **rows[row]} for row in order],
        schema={"review_id": pl.String, "product": pl.String, "stars": pl.Int64, "body": pl.String},
    )
    return ReviewsDataset(frame, [(review_ids[a], review_ids[b]) for a, b in copies])


def _shared(first: tuple[str, ...], second: tuple[str, ...]) -> int:
    return sum(a == b for a, b in zip(first, second, strict=True))


def _lightly_edited(text: str, rng: random.Random) -> str:
    """The same review re-posted: lower-cased, re-punctuated, or both."""
    lower, shout = rng.choice(((True, False), (False, True), (True, True)))
    edited = text.lower() if lower else text
    return edited.replace(". ", "! ", 1) if shout else edited


def write_reviews_dataset(
    folder: Path, *, reviews_per_product: int = DEFAULT_REVIEWS_PER_PRODUCT
) -> tuple[Path, ReviewsDataset]:
    """Write the reviews as `<folder>/reviews.parquet` (replacing any earlier copy)."""
    dataset = generate_reviews(reviews_per_product=reviews_per_product)
    return write_parquet_atomic(dataset.frame, folder / "reviews.parquet"), dataset
