"""`QAService`: the one object the CLI and the web layer call.

It wires the pipeline (sources → chunking → embedding → store → retrieval → answering), holds
the loaded index, and notices a newer build committed by anyone (the API or another process)
between requests. A request works on the snapshot it started with, so a swap never disturbs it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import answering
from .answering.aliases import corpus_acronyms
from .chunking import CHUNKING_VERSION, Passage, make_passages
from .config import LIMITS, Settings
from .embedding import Embedder, make_embedder
from .errors import BadRequest, IndexNotReady, NoSources, NotFound, SourceError
from .lexical import Postings
from .retrieval import Retriever
from .segments import Parts, Segment
from .sources import (
    CLEANING_VERSION,
    Document,
    Skipped,
    read_document,
    scan_sources,
    source_id,
)
from .store import FORMAT_VERSION, IndexData, IndexStore, new_build_id
from .text import tokens

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)
# Segments a build may list before the smallest are merged into one. Each segment is searched
# on its own, so fewer is faster to ask; merging copies arrays, so more is faster to add to.
MAX_SEGMENTS = 8
# A file modified this close before it was read is read again by the next build even when its
# size and time match: a write in the same clock tick leaves both (git calls this "racy").
# Timestamps here are kernel ticks (milliseconds); a file system that keeps whole seconds
# (FAT keeps two) gets the wider window.
_RACY_NS = 100_000_000
_RACY_COARSE_NS = 2_000_000_000


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


@dataclasses.dataclass(frozen=True)
class _Previous:
    """The build in service, as a new build grows from it."""

    data: IndexData
    sources: dict[str, dict[str, Any]]  # its manifest's entry for each source


@dataclasses.dataclass
class _Scan:
    """The sources folder against the previous build."""

    skipped: list[Skipped]
    kept: set[str] = dataclasses.field(default_factory=set)  # as the previous build has them
    touched: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # new times
    # Read anew: each with its file's size, mtime and when it was read.
    fresh: list[tuple[Document, dict[str, int]]] = dataclasses.field(default_factory=list)

    @property
    def fresh_ids(self) -> list[str]:
        return [doc.source for doc, *_ in self.fresh]


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
        self._load_lock = threading.Lock()  # one load at a time
        self._loader: threading.Thread | None = None
        # Set while a newer build cannot be opened and the last good one keeps serving.
        # `_failed` holds the CURRENT stamp that failed, in a tuple: the stamp of a deleted
        # CURRENT is None.
        self._failed: tuple[tuple[int, int, int] | None] | None = None
        self._degraded: str | None = None
        self._old_documents: dict[str, tuple[Mapping[str, Document], dict[str, Any]]] = {}

    @property
    def scorer(self) -> answering.Scorer:
        """The fitted answer model: QA_ANSWER_MODEL, or the one shipped in the package."""
        if self._scorer is None:
            path = self.settings.answer_model
            self._scorer = answering.Scorer.load(Path(path) if path else None)
        return self._scorer

    # -- index --------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current index. A newer build committed by anyone (this process, another, the
        API) is noticed between requests and opened in the background while requests go on
        with the one they have; this process's own `build()` swaps it in before returning.

        When the build CURRENT names cannot be opened (damaged, missing, another model), the
        index already loaded keeps answering (the last good index), the problem is logged and
        shown by `health()`, and loading is tried again only when CURRENT changes again.
        With no index loaded yet, the index is opened at once, and a problem is raised (a 503
        naming the file).
        """
        stamp = self.store.pointer_stamp()
        current = self._snapshot
        if current is not None and (current.stamp == stamp or self._failed == (stamp,)):
            return current
        if current is None:
            return self._load(stamp)
        with self._reload_lock:
            if self._loader is None or not self._loader.is_alive():
                self._loader = threading.Thread(target=self._load, args=(stamp,),
                                                name="index-loader", daemon=True)
                self._loader.start()
        return current

    def settle(self, timeout: float = 60.0) -> Snapshot:
        """Notice a newer build and wait until it has been opened in the background (or has
        failed to open): what a request sees a moment after a build elsewhere commits."""
        self.snapshot()
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return self.snapshot()

    def _load(self, stamp: tuple[int, int, int] | None) -> Snapshot:
        """Open the build CURRENT names (stamped `stamp`) and make it the one in service."""
        with self._load_lock:
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
            metadata = {}
            for source in data.documents:
                record = data.record(source)
                metadata[source] = {"title": record.title, **record.metadata}
            corpus = answering.CorpusStats(
                data.lexical.doc_freqs(),
                data.live_passages,
                data.acronyms(),
                metadata,
                common=data.lexical.common_terms(answering.COMMON_SHARE),
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
        """Bring the index up to date with the sources folder, doing only what changed.

        A source whose size and modification time are those the build in service recorded is
        not read again; one whose bytes are unchanged is not chunked or embedded again. New and
        changed sources become one new segment (reusing every vector whose text is unchanged);
        removed and changed ones are masked in their old segments. When nothing changed,
        nothing is embedded or written, no model is loaded, and the report names the build in
        service; `force` reads, embeds and writes everything anew.

        `progress(stage, done, total)` is called as files are read ("reading") and texts
        embedded ("embedding passages", "embedding sentences"). Interrupted at any point
        (Ctrl-C), the build leaves the index in service as it was and releases the lock.
        """
        began = time.perf_counter()
        began_ns = time.time_ns()
        with self.store.build_lock():
            self.store.remove_temporaries()  # what a killed build left
            previous = None if force else self._previous_build()
            scan = self._scan(previous, progress)
            if not scan.kept and not scan.fresh:
                reasons = "; ".join(s.reason for s in scan.skipped) or "the folder is empty"
                raise NoSources(
                    f"no readable sources in {self.settings.sources_dir} ({reasons}): add .txt, "
                    ".md, .html or .pdf files there"
                )
            prior = previous.sources if previous else {}
            removed = [s for s in prior if s not in scan.kept and s not in scan.fresh_ids]
            if previous is not None and not scan.fresh and not removed:
                manifest = previous.data.manifest
                return BuildReport(
                    build_id=previous.data.build_id, added=0, changed=0, removed=0,
                    unchanged=len(scan.kept), chunks=manifest["counts"]["passages"],
                    embedded=0, embedded_sentences=0, skipped=tuple(scan.skipped),
                    took_ms=(time.perf_counter() - began) * 1000,
                    sources=tuple((s, "unchanged") for s in sorted(scan.kept)),
                )
            entries = self._segments_after(previous, scan, removed)
            embedded = embedded_sentences = 0
            fresh_entries: dict[str, dict[str, Any]] = {}
            if scan.fresh:
                parts, embedded, embedded_sentences = self._new_segment(previous, scan, progress)
                segment_id = self.store.write_segment(parts)
                entries.append((self.store.segment(segment_id), set()))
                fresh_entries = {doc.source: {"source": doc.source, "sha256": doc.sha256,
                                              "title": doc.title, "chunks": r.passages, **seen}
                                 for (doc, seen), r in zip(scan.fresh, parts.records)}
            entries = self._merged(entries)
            build_id = new_build_id()
            sources = {**{s: prior[s] for s in scan.kept}, **scan.touched, **fresh_entries}
            manifest = self._manifest(build_id, entries, [sources[s] for s in sorted(sources)],
                                      began_ns)
            self.store.commit(manifest)
            self.store.prune(self.settings.keep_builds)
        statuses = ([(s, "unchanged") for s in scan.kept]
                    + [(s, "changed" if s in prior else "added") for s in scan.fresh_ids]
                    + [(s, "removed") for s in removed])
        counts = {status: sum(1 for _, s in statuses if s == status) for status in
                  ("added", "changed", "removed", "unchanged")}
        self._load(self.store.pointer_stamp())  # this process asks the new build at once
        return BuildReport(
            build_id=build_id,
            chunks=manifest["counts"]["passages"],
            embedded=embedded,
            embedded_sentences=embedded_sentences,
            skipped=tuple(scan.skipped),
            took_ms=(time.perf_counter() - began) * 1000,
            sources=tuple(sorted(statuses)),
            **counts,
        )

    def _previous_build(self) -> _Previous | None:
        """The build in service, when a new build can grow from it: same format, model and
        chunking, and its files all there at their sizes. Otherwise None: build anew."""
        try:
            build_id = self.store.current_build_id()
            if build_id is None:
                return None
            manifest = self.store.read_manifest(build_id)
            if manifest.get("chunking") != self._chunking():
                return None
            segments = self.store.verify(build_id, manifest, self.embedder.model_id)
            data = IndexData(build_id, manifest, segments,
                             [s.get("deleted", []) for s in manifest["segments"]])
            return _Previous(data, {s["source"]: s for s in manifest["sources"]})
        except Exception:  # no build, or one that cannot serve: build anew
            return None

    def _scan(self, previous: _Previous | None, progress: Progress | None) -> _Scan:
        """Which sources are as the previous build read them, without reading those whose size
        and modification time are unchanged; the others are read."""
        settings = self.settings
        paths, skipped = scan_sources(settings.sources_dir)
        prior = previous.sources if previous else {}
        scan = _Scan(skipped=list(skipped))
        for n, path in enumerate(paths, 1):
            sid = source_id(settings.sources_dir, path)
            entry = prior.get(sid)
            read_at = time.time_ns()
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if entry is not None and st is not None and _same_file(entry, st):
                scan.kept.add(sid)
            else:
                try:
                    doc = read_document(settings.sources_dir, path, settings.max_source_bytes)
                except SourceError as exc:
                    scan.skipped.append(Skipped(sid, exc.message))
                else:
                    seen = ({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "read_at_ns": read_at}
                            if st else {"size": -1, "mtime_ns": 0, "read_at_ns": 0})
                    if entry is not None and entry["sha256"] == doc.sha256:
                        scan.kept.add(sid)  # touched, not changed: remember its new time
                        scan.touched[sid] = {**entry, **seen}
                    else:
                        scan.fresh.append((doc, seen))
            if progress:
                progress("reading", n, len(paths))
        scan.skipped.sort(key=lambda s: s.source)
        return scan

    def _segments_after(self, previous: _Previous | None, scan: _Scan,
                        removed: list[str]) -> list[tuple[Segment, set[int]]]:
        """The previous build's segments, with changed and removed sources' rows dead."""
        if previous is None:
            return []
        data = previous.data
        entries = [(segment, set(listed.get("deleted", [])))
                   for segment, listed in zip(data.segments, data.manifest["segments"])]
        for source in [*removed, *(d.source for d, *_ in scan.fresh)]:
            if source in data.documents:
                segment, number = data.where(source)
                entries[segment][1].add(number)
        return entries

    def _new_segment(self, previous: _Previous | None, scan: _Scan,
                     progress: Progress | None) -> tuple[Parts, int, int]:
        """The new and changed sources as a segment: chunked, embedded (reusing the vectors of
        a changed source's unchanged passages and sentences), and indexed."""
        settings = self.settings

        def stage(name: str) -> Callable[[int, int], None] | None:
            return None if progress is None else lambda done, total: progress(name, done, total)

        passages: list[Passage] = []
        for doc, *_ in scan.fresh:
            passages.extend(make_passages(doc.source, doc.text, settings.chunk_sentences,
                                          settings.chunk_max_chars, settings.chunk_overlap))
        cache: dict[bytes, np.ndarray] = {}
        if previous is not None:
            for doc, *_ in scan.fresh:
                if doc.source in previous.data.documents:
                    segment, number = previous.data.where(doc.source)
                    cache.update(previous.data.segments[segment].vectors_of([number]))
        passage_items = [(bytes.fromhex(p.content_hash), p.text) for p in passages]
        sentence_items = [(hashlib.sha256(t.encode()).digest(), t) for t in (
            p.text[s.start - p.start:s.end - p.start] for p in passages for s in p.sentences)]
        passage_vectors, embedded = self._vectors(passage_items, cache,
                                                  stage("embedding passages"))
        sentence_vectors, embedded_sentences = self._vectors(sentence_items, cache,
                                                             stage("embedding sentences"))
        documents = [(doc, seen, {k: sorted(v) for k, v in corpus_acronyms([doc.text]).items()})
                     for doc, seen in scan.fresh]
        postings = Postings.build([tokens(p.text) for p in passages])
        parts = Parts.of_documents(documents, passages, [h for h, _ in passage_items],
                                   [h for h, _ in sentence_items], passage_vectors,
                                   sentence_vectors, postings)
        return parts, embedded, embedded_sentences

    def _merged(self, entries: list[tuple[Segment, set[int]]]
                ) -> list[tuple[Segment, set[int]]]:
        """Segments after merging: wholly dead ones dropped; those more than half dead, and the
        smallest when there are more than MAX_SEGMENTS, copied into one new segment."""
        entries = [e for e in entries if len(e[1]) < len(e[0].records)]
        merge = {i for i, (segment, dead) in enumerate(entries)
                 if segment.live(dead) * 2 < segment.size}
        if len(entries) > MAX_SEGMENTS:
            by_size = sorted(range(len(entries)), key=lambda i: entries[i][0].live(entries[i][1]))
            merge.update(by_size[:len(entries) - MAX_SEGMENTS // 2 + 1])
        if not merge or (len(merge) == 1 and not entries[min(merge)][1]):
            return entries
        chosen = [entries[i] for i in sorted(merge)]
        parts = Parts.merged([(segment, segment.alive(dead)) for segment, dead in chosen])
        merged = (self.store.segment(self.store.write_segment(parts)), set())
        first = min(merge)
        return [merged if i == first else e for i, e in enumerate(entries)
                if i == first or i not in merge]

    def _chunking(self) -> dict[str, Any]:
        s = self.settings
        return {
            "sentences": s.chunk_sentences,
            "max_chars": s.chunk_max_chars,
            "overlap": s.chunk_overlap,
            "chunking_version": CHUNKING_VERSION,
            "cleaning_version": CLEANING_VERSION,
        }

    def _vectors(
        self,
        items: list[tuple[bytes, str]],
        cache: dict[bytes, np.ndarray],
        progress: Callable[[int, int], None] | None,
    ) -> tuple[np.ndarray, int]:
        dimension = self.embedder.dimension
        out = np.zeros((len(items), dimension), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
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

    def _manifest(self, build_id: str, entries: list[tuple[Segment, set[int]]],
                  sources: list[dict[str, Any]], began_ns: int) -> dict[str, Any]:
        passages = sum(segment.live(dead) for segment, dead in entries)
        return {
            "format_version": FORMAT_VERSION,
            "build_id": build_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "built_at_ns": began_ns,
            "model": {"name": self.embedder.model_id, "dimension": self.embedder.dimension},
            "chunking": self._chunking(),
            "counts": {"sources": len(sources), "passages": passages,
                       "segments": len(entries)},
            "segments": [{"id": segment.id, "passages": segment.size,
                          "dense": segment.meta.get("dense", {}).get("kind", "exact"),
                          "deleted": sorted(dead)} for segment, dead in entries],
            "sources": sources,
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
        return [_source_record(data.record(s), chunks.get(s, 0)) for s in data.documents]

    def get_source(self, source: str, version: str | None = None) -> dict[str, Any]:
        """One source and its cleaned text: of the index in service, or of the kept build
        `version` (an answer's `index_version`), so a citation can be checked against the
        exact text it was made from even after the source was edited and rebuilt.

        Raises `NotFound` (a `QAError`) for an id that is not indexed."""
        data = self.snapshot().data
        if version is None or version == data.build_id:
            documents, manifest = data.documents, data.manifest
        else:
            documents, manifest = self._documents_of(version)
        doc = documents.get(source)
        if doc is None:
            where = "" if version is None else f" in index version {version}"
            raise NotFound(f"no indexed source {source!r}{where}; GET /api/sources lists them")
        chunks = next((s.get("chunks", 0) for s in manifest.get("sources", [])
                       if s.get("source") == source), 0)
        record = _source_record(doc, chunks)
        record["text"] = doc.text
        record["metadata"] = doc.metadata
        record["pages"] = [{"page": n, "start": s} for n, s in doc.pages]
        record["index_version"] = version or data.build_id
        return record

    def _documents_of(self, version: str) -> tuple[Mapping[str, Document], dict[str, Any]]:
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
                "chunks": data.live_passages,
                "model": data.model,
            },
        }
        if self._degraded:
            out["reason"] = (f"{self._degraded} (still serving the last good index "
                             f"{data.build_id})")
        return out


def _source_record(doc: Any, chunks: int) -> dict[str, Any]:
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


def _same_file(entry: dict[str, Any], st: os.stat_result) -> bool:
    """Is the file as the build that read it saw it (size and modification time), and was it
    read long enough after its last change for the time to tell?"""
    if entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
        return False
    window = _RACY_COARSE_NS if st.st_mtime_ns % 1_000_000_000 == 0 else _RACY_NS
    return st.st_mtime_ns < entry.get("read_at_ns", 0) - window
