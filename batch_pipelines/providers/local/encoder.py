"""A sentence-transformers model in this process: tokenize once, collate token ids, one forward pass.

Runs on the GPU when torch sees one and on the CPU otherwise. Texts are tokenized once (``tokenize``);
a pass is built from those ids (``collate``, host work that another thread can do while the device runs
the previous pass) and run through the model's own modules (``embed``), so nothing is tokenized twice
and vectors come back as one float32 array. torch and sentence-transformers are imported here only (the
optional ``local`` extra).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Precision = Literal["float32", "float16", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("float32", "float16", "bfloat16")

# Starting budget of padded tokens per forward pass. On a CPU a pass costs about its padded tokens and
# larger passes stop paying off long before memory runs out: benchmarks/local_embeddings.py measured
# 8-32 sorted items of ~80 tokens per pass best (1.2-1.5x one at a time), 128 items 1.17x.
CPU_TOKEN_BUDGET = 2_048
# On a GPU the budget scales with free memory (halving on every out-of-memory error), up to a ceiling: a
# pass of 262,144 padded tokens (4,096 items of 64 tokens) already keeps a small encoder's kernels
# large, and passes no larger keep the host thread's work overlapped and progress frequent.
GPU_BYTES_PER_PADDED_TOKEN = 256 * 1024
GPU_TOKEN_BUDGET_RANGE = (4_096, 262_144)

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TokenIds:
    """Texts tokenized once: every text's ids end to end in ``flat``, text i at
    ``flat[starts[i] : starts[i] + lengths[i]]``."""

    flat: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass(frozen=True, slots=True)
class Features:
    """One pass's padded token ids and attention mask (torch tensors, in pinned memory for a GPU)."""

    input_ids: Any
    attention_mask: Any

    @property
    def items(self) -> int:
        return int(self.input_ids.shape[0])


class SentenceEncoder:
    """Loads the model in ``model_path`` (offline) onto ``device`` (default: cuda when available) in
    ``precision`` (default: float16 on a GPU, float32 on a CPU)."""

    def __init__(self, model_path: Path, device: str | None = None, precision: str | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch: Any = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.on_gpu = self.device.startswith("cuda")
        chosen = precision or ("float16" if self.on_gpu else "float32")
        if chosen not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {chosen!r}")
        self.precision: str = chosen
        self.model: Any = SentenceTransformer(str(model_path), device=self.device, local_files_only=True)
        self.model.eval()
        if chosen != "float32":
            self.model.to(getattr(torch, chosen))
        self.max_tokens = int(self.model.max_seq_length or 512)
        # (renamed get_embedding_dimension in sentence-transformers 6)
        dimension_of = getattr(self.model, "get_embedding_dimension", None)
        dimensions = (dimension_of or self.model.get_sentence_embedding_dimension)()
        if not dimensions:
            raise ValueError(f"model {model_path}: its vectors have no fixed dimension")
        self.dimensions = int(dimensions)
        self._tokenizer: Any = self.model.tokenizer
        self._pad_id = int(self._tokenizer.pad_token_id or 0)

    def tokenize(self, texts: list[str]) -> TokenIds:
        """Each text's token ids (special tokens included, truncated as the model truncates)."""
        ids = self._tokenizer(
            texts,
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_tokens,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        starts = np.zeros(len(ids), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return TokenIds(flat, starts, lengths)

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens each text becomes in a pass."""
        return [int(n) for n in self.tokenize(texts).lengths] if texts else []

    def collate(self, tokens: TokenIds, indices: list[int]) -> Features:
        """The pass of ``indices``: ids padded to the longest of them, in pinned memory on a GPU host."""
        torch = self._torch
        chosen = np.asarray(indices, dtype=np.int64)
        lengths = tokens.lengths[chosen]
        width = max(1, int(lengths.max()))
        columns = np.arange(width, dtype=np.int64)
        mask = columns < lengths[:, None]
        positions = np.minimum(tokens.starts[chosen, None] + columns, max(len(tokens.flat) - 1, 0))
        ids = np.where(mask, tokens.flat[positions] if len(tokens.flat) else self._pad_id, self._pad_id)
        input_ids = torch.from_numpy(ids)
        attention_mask = torch.from_numpy(mask.astype(np.int64))
        if self.on_gpu:
            input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
        return Features(input_ids, attention_mask)

    def embed(self, features: Features) -> Vectors:
        """One forward pass: a float32 row per item."""
        torch = self._torch
        with torch.inference_mode():
            inputs = {
                "input_ids": features.input_ids.to(self.device, non_blocking=True),
                "attention_mask": features.attention_mask.to(self.device, non_blocking=True),
            }
            vectors = self.model(inputs)["sentence_embedding"]
            rows: Vectors = vectors.float().cpu().numpy()
        return rows

    def encode(self, texts: list[str]) -> Vectors:
        """One forward pass over ``texts`` (tokenized here)."""
        tokens = self.tokenize(texts)
        return self.embed(self.collate(tokens, list(range(len(texts)))))

    def initial_token_budget(self) -> int:
        if not self.on_gpu:
            return CPU_TOKEN_BUDGET
        free_bytes, _total = self._torch.cuda.mem_get_info()
        low, high = GPU_TOKEN_BUDGET_RANGE
        return int(min(high, max(low, free_bytes // GPU_BYTES_PER_PADDED_TOKEN)))

    def synchronize(self) -> None:
        """Wait for the device's queued work (for timing)."""
        if self.on_gpu:
            self._torch.cuda.synchronize()

    def release_memory(self) -> None:
        if self.on_gpu:
            self._torch.cuda.empty_cache()
