"""`QAService`: the one object the CLI and the web layer call.

It wires the pipeline (sources → chunking → embedding → store → retrieval → answering), holds
the loaded index, and notices a newer build committed by anyone (the API or another process)
between requests. A request works on the snapshot it started with, so a swap never disturbs it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import answering
from .chunking import CHUNKING_VERSION, Passage, make_passages
from .config import LIMITS, Settings
from .embedding import Embedder, make_embedder
from .errors import BadRequest, IndexNotReady, NoSources, NotFound
from .retrieval import BM25, Retriever
from .sources import CLEANING_VERSION, Document, Skipped, load_documents
from .store import (
    FORMAT_VERSION,
    IndexData,
    IndexStore,
    new_build_id,
    previous_vectors,
    sentence_hash,
)
from .text import tokens

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclasses.dataclass(frozen=True)
class BuildReport:
    build_id: str
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks: int
    embedded: int  # passages whose vectors were computed (not reused)
    embedded_sentences: int
    skipped: tuple[Skipped, ...]
    took_ms: float
    sources: tuple[tuple[str, str], ...]  # (source, status) for each source seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "build_id": self.build_id,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "embedded_sentences": self.embedded_sentences,
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "took_ms": round(self.took_ms, 1),
        }


@dataclasses.dataclass(frozen=True)
class Snapshot:
    data: IndexData
    retriever: Retriever
    corpus: answering.CorpusStats
    stamp: tuple[int, int, int] | None


class QAService:
    """The front door: `build()` the index of a sources folder, `ask()` it questions, read its
    `list_sources()` and `get_source()`. Safe to share between threads; `embedder` replaces the
    packaged sentence-transformers model (any object with the `Embedder` protocol)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or make_embedder(settings)
        self.store = IndexStore(settings.index_dir)
        self._scorer: answering.Scorer | None = None
        self._snapshot: Snapshot | None = None
        self._reload_lock = threading.Lock()
        # Set while a newer build cannot be opened and the last good one keeps serving.
        # `_failed` holds the CURRENT stamp that failed, in a tuple: the stamp of a deleted
        # CURRENT is None.
        self._failed: tuple[tuple[int, int, int] | None] | None = None
        self._degraded: str | None = None
        self._old_documents: dict[str, tuple[dict[str, Document], dict[str, Any]]] = {}

    @property
    def scorer(self) -> answering.Scorer:
        """The fitted answer model: QA_ANSWER_MODEL, or the one shipped in the package."""
        if self._scorer is None:
            path = self.settings.answer_model
            self._scorer = answering.Scorer.load(Path(path) if path else None)
        return self._scorer

    # -- index --------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current index, reloaded when a newer build has been committed.

        When the build CURRENT names cannot be opened (damaged, missing, another model), the
        index already loaded keeps answering (the last good index), the problem is logged and
        shown by `health()`, and loading is tried again only when CURRENT changes again.
        With no index loaded yet, the problem is raised (a 503 naming the file).
        """
        stamp = self.store.pointer_stamp()
        current = self._snapshot
        if current is not None and (current.stamp == stamp or self._failed == (stamp,)):
            return current
        with self._reload_lock:
            current = self._snapshot
            if current is not None and (current.stamp == stamp or self._failed == (stamp,)):
                return current
            try:
                data = self.store.load(self.embedder.model_id)
            except (IndexNotReady, OSError) as exc:
                error = exc if isinstance(exc, IndexNotReady) else IndexNotReady(
                    f"the index in {self.store.index_dir} cannot be read ({exc}): check the "
                    "folder's permissions and run `qa-service build`")
                if current is None:
                    raise error from None
                if self._failed != (stamp,):
                    log.warning("serving the last good index %s: the new one cannot be opened:"
                                " %s", current.data.build_id, error.message)
                self._failed, self._degraded = (stamp,), error.message
                return current
            retriever = Retriever(data)
            corpus = answering.CorpusStats(
                retriever.bm25.doc_freq,
                len(data.passages),
                {s: d.text for s, d in data.documents.items()},
                {s: {"title": d.title, **d.metadata} for s, d in data.documents.items()},
            )
            current = Snapshot(data, retriever, corpus, stamp)
            self._snapshot = current
            if self._degraded:
                log.warning("index %s loaded; no longer degraded", data.build_id)
            self._failed, self._degraded = None, None
            return current

    def warm_up(self) -> None:
        """Load the models and, when there is one, the index, before the first request."""
        self.embedder.embed_query("warm up")
        _ = self.scorer
        if self.store.current_build_id() is not None:
            self.snapshot()

    def build(self, progress: Progress | None = None, force: bool = False) -> BuildReport:
        """Rebuild from the sources folder, reusing every vector whose text is unchanged.

        When the sources, settings and model are those of the build in service (and its files
        check out), nothing is embedded or written and the report names that build; `force`
        writes a new build anyway.

        `progress(stage, done, total)` is called as files are read ("reading") and texts
        embedded ("embedding passages", "embedding sentences"). Interrupted at any point
        (Ctrl-C), the build leaves the index in service as it was and releases the lock.
        """
        began = time.perf_counter()
        settings = self.settings

        def stage(name: str) -> Callable[[int, int], None] | None:
            return None if progress is None else lambda done, total: progress(name, done, total)

        with self.store.build_lock():
            documents, skipped = load_documents(settings.sources_dir, settings.max_source_bytes,
                                                on_document=stage("reading"))
            if not documents:
                reasons = "; ".join(s.reason for s in skipped) or "the folder is empty"
                raise NoSources(
                    f"no readable sources in {settings.sources_dir} ({reasons}): add .txt, .md, "
                    ".html or .pdf files there"
                )
            previous = self._previous_sources()
            unchanged = None if force else self._unchanged_build(documents, previous)
            if unchanged is not None:  # nothing to embed or write: the build in service stands
                self.store.remove_temporaries()  # what a killed build left
                return BuildReport(
                    build_id=unchanged["build_id"], added=0, changed=0, removed=0,
                    unchanged=len(documents), chunks=unchanged["counts"]["passages"],
                    embedded=0, embedded_sentences=0, skipped=tuple(skipped),
                    took_ms=(time.perf_counter() - began) * 1000,
                    sources=tuple((d.source, "unchanged") for d in documents),
                )
            passages: list[Passage] = []
            for doc in documents:
                passages.extend(
                    make_passages(
                        doc.source,
                        doc.text,
                        settings.chunk_sentences,
                        settings.chunk_max_chars,
                        settings.chunk_overlap,
                    )
                )
            cache = previous_vectors(self.store, self.embedder.model_id)
            passage_vectors, embedded = self._vectors(
                [(p.content_hash, p.text) for p in passages], cache, stage("embedding passages")
            )
            sentence_items = [
                (sentence_hash(p.text, p.start, s), p.text[s.start - p.start:s.end - p.start])
                for p in passages
                for s in p.sentences
            ]
            sentence_vectors, embedded_sentences = self._vectors(
                sentence_items, cache, stage("embedding sentences"))
            statuses = _statuses(previous, documents)
            build_id = new_build_id()
            manifest = self._manifest(build_id, documents, passages)
            lexical = BM25.build([tokens(p.text) for p in passages]).to_arrays()
            self.store.write_build(
                manifest, documents, passages, passage_vectors, sentence_vectors, lexical
            )
            self.store.prune(settings.keep_builds)
        counts = {status: sum(1 for _, s in statuses if s == status) for status in
                  ("added", "changed", "removed", "unchanged")}
        return BuildReport(
            build_id=build_id,
            chunks=len(passages),
            embedded=embedded,
            embedded_sentences=embedded_sentences,
            skipped=tuple(skipped),
            took_ms=(time.perf_counter() - began) * 1000,
            sources=tuple(statuses),
            **counts,
        )

    def _unchanged_build(
        self, documents: list[Document], previous: dict[str, str]
    ) -> dict[str, Any] | None:
        """The manifest of the build in service when it was made from these very sources
        (`previous`: its source → sha256) with these settings, model and format, so a new build
        would be the same; else None. The checksums are read last, only when all else matches."""
        if previous != {d.source: d.sha256 for d in documents}:
            return None
        try:
            build_id = self.store.current_build_id()
            if build_id is None:
                return None
            manifest = self.store.read_manifest(build_id)
            if manifest["chunking"] != self._chunking():
                return None
            self.store.verify(build_id, manifest, self.embedder.model_id)
            return {**manifest, "build_id": build_id}
        except Exception:  # no build, or one that cannot serve: build anew
            return None

    def _chunking(self) -> dict[str, Any]:
        s = self.settings
        return {
            "sentences": s.chunk_sentences,
            "max_chars": s.chunk_max_chars,
            "overlap": s.chunk_overlap,
            "chunking_version": CHUNKING_VERSION,
            "cleaning_version": CLEANING_VERSION,
        }

    def _previous_sources(self) -> dict[str, str]:
        try:
            manifest = self.store.read_manifest()
        except Exception:  # no build yet, or an unreadable one: everything counts as added
            return {}
        return {s["source"]: s["sha256"] for s in manifest.get("sources", [])}

    def _vectors(
        self,
        items: list[tuple[str, str]],
        cache: dict[str, np.ndarray],
        progress: Callable[[int, int], None] | None,
    ) -> tuple[np.ndarray, int]:
        dimension = self.embedder.dimension
        out = np.zeros((len(items), dimension), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for row, (digest, _text) in enumerate(items):
            vector = cache.get(digest)
            if vector is not None and vector.shape == (dimension,):
                out[row] = vector
            else:
                missing.setdefault(digest, []).append(row)
        if missing:
            texts = [items[rows[0]][1] for rows in missing.values()]
            done = 0

            def step(n: int) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, len(texts))

            vectors = self.embedder.embed_documents(texts, progress=step)
            for vector, rows in zip(vectors, missing.values()):
                out[rows] = vector
        return out, len(missing)

    def _manifest(
        self, build_id: str, documents: list[Document], passages: list[Passage]
    ) -> dict[str, Any]:
        per_source: dict[str, int] = {}
        for p in passages:
            per_source[p.source] = per_source.get(p.source, 0) + 1
        return {
            "format_version": FORMAT_VERSION,
            "build_id": build_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "model": {"name": self.embedder.model_id, "dimension": self.embedder.dimension},
            "chunking": self._chunking(),
            "faiss": "IndexFlatIP",
            "counts": {"sources": len(documents), "passages": len(passages)},
            "sources": [
                {"source": d.source, "sha256": d.sha256, "title": d.title,
                 "chunks": per_source.get(d.source, 0)}
                for d in documents
            ],
        }

    # -- questions ----------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        history: Sequence[dict[str, str]] = (),
        top_k: int | None = None,
        sources: Sequence[str] | None = None,
        mode: str = "hybrid",
        explain: bool = False,
        scorer: answering.Scorer | None = None,
    ) -> dict[str, Any]:
        """Answer `question` in the shape of the API's POST /api/answer response.

        `mode` "dense" gives the plain FAISS baseline; `explain` adds the retrieved passages;
        `scorer` replaces the packaged answer model (cross-validation folds).
        """
        began = time.perf_counter()
        question = (question or "").strip()
        if not question:
            raise BadRequest("question is empty: ask something about the sources")
        if len(question) > LIMITS.question_chars:
            raise BadRequest(
                f"question is {len(question)} characters long; the limit is "
                f"{LIMITS.question_chars}"
            )
        if len(history) > LIMITS.history_turns:
            raise BadRequest(
                f"history has {len(history)} turns; send at most the last {LIMITS.history_turns}"
            )
        top_k = self.settings.top_k if top_k is None else top_k
        if not 1 <= top_k <= LIMITS.top_k:
            raise BadRequest(f"top_k must be between 1 and {LIMITS.top_k}, got {top_k}")
        snap = self.snapshot()
        if sources is not None:
            unknown = [s for s in sources if s not in snap.data.documents]
            if unknown:
                raise BadRequest(
                    f"unknown source id(s): {', '.join(unknown)}; GET /api/sources lists them"
                )
        prepared, hits = self._prepare(snap, question, history, top_k, sources, mode)
        if mode == "dense":
            result = answering.passage_baseline(prepared.question, hits, snap.data.documents)
        else:
            result = answering.respond(prepared, scorer or self.scorer, snap.corpus,
                                       snap.data.documents)
        out = result.to_dict()
        if explain:
            out["retrieved"] = [
                {"chunk_id": h.passage.chunk_id, "score": round(h.score, 4), "text": h.passage.text}
                for h in hits
            ]
        out["index_version"] = snap.data.build_id
        out["took_ms"] = round((time.perf_counter() - began) * 1000, 1)
        return out

    def prepare(
        self, question: str, history: Sequence[dict[str, str]] = (), top_k: int | None = None
    ) -> answering.Prepared:
        """The stages before the fitted weights, for training: analysis, candidates, features."""
        snap = self.snapshot()
        return self._prepare(snap, question.strip(), history, top_k or self.settings.top_k, None,
                             "hybrid")[0]

    def _prepare(
        self,
        snap: Snapshot,
        question: str,
        history: Sequence[dict[str, str]],
        top_k: int,
        sources: Sequence[str] | None,
        mode: str,
    ) -> tuple[answering.Prepared, list[Any]]:
        analysed = answering.analyse(question, history, snap.corpus, sources)
        vector = self.embedder.embed_query(analysed.search_text)
        hits = snap.retriever.search(vector, list(analysed.weights), top_k, sources, mode=mode,
                                     term_weights=analysed.weights)
        if mode == "dense":
            return answering.Prepared(analysed, [], []), hits
        own = self.embedder.embed_query(question) if analysed.followup else None
        return answering.prepare(analysed, hits, snap.data, snap.corpus, vector, own), hits

    # -- sources ------------------------------------------------------------------------------

    def list_sources(self) -> list[dict[str, Any]]:
        """The indexed sources, as GET /api/sources gives them."""
        data = self.snapshot().data
        chunks = {s["source"]: s["chunks"] for s in data.manifest["sources"]}
        return [_source_record(doc, chunks.get(doc.source, 0)) for doc in data.documents.values()]

    def get_source(self, source: str, version: str | None = None) -> dict[str, Any]:
        """One source and its cleaned text: of the index in service, or of the kept build
        `version` (an answer's `index_version`), so a citation can be checked against the
        exact text it was made from even after the source was edited and rebuilt.

        Raises `NotFound` (a `QAError`) for an id that is not indexed."""
        data = self.snapshot().data
        if version is None or version == data.build_id:
            documents, passages = data.documents, data.passages
        else:
            documents, manifest = self._documents_of(version)
            passages = None
        doc = documents.get(source)
        if doc is None:
            where = "" if version is None else f" in index version {version}"
            raise NotFound(f"no indexed source {source!r}{where}; GET /api/sources lists them")
        if passages is not None:
            chunks = sum(1 for p in passages if p.source == source)
        else:
            chunks = next((s.get("chunks", 0) for s in manifest.get("sources", [])
                           if s.get("source") == source), 0)
        record = _source_record(doc, chunks)
        record["text"] = doc.text
        record["metadata"] = doc.metadata
        record["pages"] = [{"page": n, "start": s} for n, s in doc.pages]
        record["index_version"] = version or data.build_id
        return record

    def _documents_of(self, version: str) -> tuple[dict[str, Document], dict[str, Any]]:
        """A kept build's documents and manifest, the last few remembered (a reader checks
        several citations of one answer) for as long as the build is on disk."""
        with self._reload_lock:
            cached = self._old_documents.get(version)
        if cached is not None and self.store.is_kept(version):
            return cached
        loaded = self.store.read_documents(version)
        with self._reload_lock:
            self._old_documents[version] = loaded
            while len(self._old_documents) > 2:
                self._old_documents.pop(next(iter(self._old_documents)))
        return loaded

    def health(self) -> dict[str, Any]:
        """Status and index summary, as GET /healthz gives it: "ok", or "degraded" with the
        reason while the last good index stands in."""
        data = self.snapshot().data
        out: dict[str, Any] = {
            "status": "degraded" if self._degraded else "ok",
            "index": {
                "version": data.build_id,
                "sources": len(data.documents),
                "chunks": len(data.passages),
                "model": data.model,
            },
        }
        if self._degraded:
            out["reason"] = (f"{self._degraded} (still serving the last good index "
                             f"{data.build_id})")
        return out


def _source_record(doc: Document, chunks: int) -> dict[str, Any]:
    meta = doc.metadata
    return {
        "source": doc.source,
        "title": doc.title,
        "author": meta.get("author") or meta.get("publisher"),
        "date": _date(meta.get("date")),
        "url": meta.get("url"),
        "chunks": chunks,
        "sha256": doc.sha256,
    }


def _date(value: Any) -> str | None:
    if not value:
        return None
    text = str(value)
    return text[:10] if len(text) >= 10 and text[4] == "-" and text[7] == "-" else text


def _statuses(previous: dict[str, str], documents: list[Document]) -> list[tuple[str, str]]:
    out = []
    current = {d.source: d.sha256 for d in documents}
    for source, digest in current.items():
        if source not in previous:
            out.append((source, "added"))
        elif previous[source] != digest:
            out.append((source, "changed"))
        else:
            out.append((source, "unchanged"))
    out.extend((s, "removed") for s in previous if s not in current)
    return out
