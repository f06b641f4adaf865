"""Embedders: the ONNX export gives torch's vectors, is made once and kept, and refuses models
it cannot run; the settings pick the backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_service import embedding
from qa_service.config import Settings
from qa_service.embedding import (
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
)
from qa_service.errors import ConfigError

from .conftest import SOURCES


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def _passages() -> list[str]:
    text = (SOURCES / "kashin-military-technical-cooperation.txt").read_text(encoding="utf-8")
    return [text[i:i + 600] for i in range(0, 6000, 600)] + ["Short.", "Su-27SK"]


def test_onnx_vectors_match_torch(real_embedder, torch_embedder):
    assert isinstance(real_embedder, OnnxEmbedder)  # what the service uses by default
    texts = _passages()
    got = real_embedder.embed_documents(texts)
    want = torch_embedder.embed_documents(texts)
    assert got.shape == want.shape == (len(texts), real_embedder.dimension)
    assert float((got * want).sum(axis=1).min()) >= embedding.MATCH_COSINE
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    query = "What did the 1996 license contract cover?"
    assert float(real_embedder.embed_query(query) @ torch_embedder.embed_query(query)) >= 0.999


def test_the_export_is_made_once_and_kept(tmp_path, monkeypatch):
    first = OnnxEmbedder(cache_dir=tmp_path)
    first.embed_query("load")
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(embedding, "_export", no_export)
    again = OnnxEmbedder(cache_dir=tmp_path)
    assert again.embed_query("load").shape == (again.dimension,)


def _model_folder(tmp_path: Path, modules: list[str], pooling: dict) -> Path:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": "" if i == 0 else f"{i}_{kind}",
         "type": f"sentence_transformers.models.{kind}"} for i, kind in enumerate(modules)]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 8, **pooling}))
    return folder


@pytest.mark.parametrize(("modules", "pooling", "message"), [
    (["Transformer", "Pooling", "Dense"], {"pooling_mode_mean_tokens": True}, "has modules"),
    (["Transformer", "Pooling"], {"pooling_mode_max_tokens": True}, "mean or CLS pooling"),
])
def test_models_without_an_onnx_path_are_refused_by_setting(tmp_path, modules, pooling, message):
    folder = _model_folder(tmp_path, modules, pooling)
    with pytest.raises(ConfigError, match=message) as caught:
        embedding._pipeline_config(folder)
    assert "QA_EMBED_BACKEND=torch" in str(caught.value)


def test_pipeline_config_of_the_packaged_model():
    folder = Path(embedding.resolve_model_path(embedding.DEFAULT_MODEL))
    config = embedding._pipeline_config(folder)
    assert config == {"pooling": "mean", "normalize": True, "max_length": 256, "dimension": 384}


def test_settings_pick_the_backend():
    assert isinstance(make_embedder(Settings()), OnnxEmbedder)
    assert isinstance(make_embedder(Settings(embed_backend="torch")), SentenceTransformerEmbedder)
    with pytest.raises(ConfigError, match="QA_EMBED_BACKEND"):
        Settings.from_env({"QA_EMBED_BACKEND": "gpu"})


def test_hashing_embedder_is_deterministic_and_normalised():
    fake = HashingEmbedder(16)
    a, b = fake.embed_documents(["the engine powers it", "the engine powers it"])
    assert np.array_equal(a, b) and abs(float(np.linalg.norm(a)) - 1.0) < 1e-6
