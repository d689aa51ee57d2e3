"""A sentence-transformers model in this process: token counts, one forward pass, the device's budget.

Runs on the GPU when torch sees one and on the CPU otherwise; nothing to configure. torch and
sentence-transformers are imported here only (the optional ``local`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Starting budget of padded tokens per forward pass. On a GPU it scales with free memory and halves on
# every out-of-memory error. On a CPU a pass costs about its padded tokens and larger passes stop paying
# off long before memory runs out: benchmarks/local_embeddings.py measured 8-32 sorted items of ~80
# tokens per pass best (1.2-1.5x one at a time), 128 items 1.17x.
CPU_TOKEN_BUDGET = 2_048
GPU_BYTES_PER_PADDED_TOKEN = 256 * 1024
GPU_TOKEN_BUDGET_RANGE = (4_096, 1_048_576)


class SentenceEncoder:
    """Loads the model in ``model_path`` (offline) onto ``device`` (default: cuda when available)."""

    def __init__(self, model_path: Path, device: str | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch: Any = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model: Any = SentenceTransformer(str(model_path), device=self.device, local_files_only=True)
        self.max_tokens = int(self.model.max_seq_length or 512)

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens each text becomes in a pass (special tokens included, truncated as the model truncates)."""
        encoded = self.model.tokenizer(
            texts, add_special_tokens=True, truncation=True, max_length=self.max_tokens
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(self, texts: list[str]) -> list[list[float]]:
        """One forward pass over ``texts``."""
        with self._torch.inference_mode():
            vectors = self.model.encode(
                texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
            )
        rows: list[list[float]] = vectors.tolist()
        return rows

    def initial_token_budget(self) -> int:
        if not self.device.startswith("cuda"):
            return CPU_TOKEN_BUDGET
        free_bytes, _total = self._torch.cuda.mem_get_info()
        low, high = GPU_TOKEN_BUDGET_RANGE
        return int(min(high, max(low, free_bytes // GPU_BYTES_PER_PADDED_TOKEN)))

    def release_memory(self) -> None:
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
