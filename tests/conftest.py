"""Shared fixtures: settings on tmp_path, tiny sources, a fast service on a fake embedder,
and the real service (the packaged model, a real FAISS index of the project's sources)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from qa_service.config import Settings  # noqa: E402
from qa_service.embedding import Embedder, HashingEmbedder, make_embedder  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.web import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "sources"
SHARED_DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"
GOLD = Path(__file__).parent / "gold"
ARTIFACTS = ROOT / "test-artifacts"

TINY = {
    "alpha.txt": "---\ntitle: Alpha Report\nauthor: Jane Roe\ndate: 2020-01-02\n---\n"
                 "The Alpha treaty was signed on March 3, 2001. It covered 40 river ports.\n\n"
                 "The Zeta-7 engine powers the Alpha glider. Its maker is Northwind Works.\n",
    "beta.md": "---\ntitle: Beta Notes\n---\n# Beta\n\n![chart](https://example.org/c.png)\n"
               "The Beta canal opened in 1987 after a decade of work. Boats pay $4 million a "
               "year in tolls.\n",
}


@pytest.fixture
def tiny_sources(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    for name, text in TINY.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def fake_settings(tmp_path: Path, tiny_sources: Path) -> Settings:
    return Settings(sources_dir=tiny_sources, index_dir=tmp_path / "index")


@pytest.fixture
def fake_service(fake_settings: Settings) -> QAService:
    return QAService(fake_settings, embedder=HashingEmbedder())


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    """The packaged model on the default backend (ONNX Runtime), as the service ships."""
    embedder = make_embedder(Settings())
    embedder.embed_query("load once")
    return embedder


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Settings:
    """A real index of a copy of the project's sources, built once per test session."""
    base = tmp_path_factory.mktemp("real")
    shutil.copytree(SOURCES, base / "sources")
    settings = Settings(sources_dir=base / "sources", index_dir=base / "index")
    QAService(settings, embedder=real_embedder).build()
    return settings


@pytest.fixture(scope="session")
def real_service(real_index: Settings, real_embedder) -> QAService:
    return QAService(real_index, embedder=real_embedder)


@pytest.fixture
def app(real_service: QAService):
    return create_app(real_service.settings, real_service)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def built_fake(fake_service: QAService) -> QAService:
    """The fake-embedder service over the tiny sources, built."""
    fake_service.build()
    return fake_service


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """`app` served by a real waitress server on 127.0.0.1 (a free port); yields its URL."""
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()


@pytest.fixture(scope="session")
def live_server(real_service: QAService):
    """A real server serving the real index."""
    with serving(create_app(real_service.settings, real_service)) as url:
        yield url
