"""Everything under the index folder: versioned builds, an atomic commit point, loading.

On disk (format version 1)::

    index/
      CURRENT                 the id of the build in service (replaced atomically)
      .lock                   held (flock) by the one build that may run at a time
      builds/<build-id>/
        manifest.json         format version, model, chunking, sources with sha256, files' sha256
        documents.json        each source's metadata and cleaned text (what offsets point into)
        passages.json         passages: source, offsets, sentence offsets, content hash
        passages.npy          passage vectors (float32, normalized), row i = passage i
        sentences.npy         sentence vectors, in the order passages list their sentences
        dense.faiss           FAISS inner-product index over passages.npy

A build is written to `builds/.tmp-<id>/`, renamed to `builds/<id>/`, then committed by
replacing CURRENT. Readers only ever follow CURRENT, so they never see a half-written build.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .chunking import Passage, Span
from .errors import BuildRunning, IndexFormatError, IndexNotReady, IndexWriteError, NotFound
from .sources import Document

# 2: the lexical index (BM25 postings) is written with the build, not rebuilt at every load.
FORMAT_VERSION = 2
_FILES = ("documents.json", "passages.json", "passages.npy", "sentences.npy", "dense.faiss",
          "lexical.npz")
# What a build id may look like: new_build_id()'s ids and plain names, never a path.
_BUILD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REBUILD = "run `qa-service build` to make a new build"


@dataclasses.dataclass
class IndexData:
    """One loaded build: read-only once made, so requests can share it across threads."""

    build_id: str
    manifest: dict[str, Any]
    documents: dict[str, Document]
    passages: list[Passage]
    passage_vectors: np.ndarray
    sentence_vectors: np.ndarray  # row per (passage, sentence) in passage order
    sentence_rows: list[list[int]]  # passage i → rows of sentence_vectors
    faiss_index: Any
    lexical: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # retrieval's BM25

    @property
    def model(self) -> str:
        return self.manifest["model"]["name"]

    def sentence_vector(self, passage: int, sentence: int) -> np.ndarray:
        """The vector of sentence `sentence` of passage row `passage`."""
        return self.sentence_vectors[self.sentence_rows[passage][sentence]]


def new_build_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class IndexStore:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.builds_dir = self.index_dir / "builds"
        self.pointer = self.index_dir / "CURRENT"

    # -- the commit point ---------------------------------------------------------------------

    def current_build_id(self) -> str | None:
        """The build CURRENT names; None when there is none. A CURRENT that is not one line
        naming a build (binary, a folder, a path) is refused, naming the file."""
        try:
            raw = self.pointer.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:  # a folder, unreadable
            raise IndexFormatError(
                f"{self.pointer} cannot be read ({exc.strerror}): remove it and {_REBUILD}"
            ) from None
        try:
            build_id = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            build_id = None
        if build_id == "":
            return None
        if build_id is None or not _BUILD_ID.fullmatch(build_id):
            raise IndexFormatError(
                f"{self.pointer} is damaged (it should hold one build id such as "
                f"20261122T104500-3f2a): {_REBUILD}"
            )
        return build_id

    def pointer_stamp(self) -> tuple[int, int, int] | None:
        """Changes whenever CURRENT is replaced: a cheap check for a newer build."""
        try:
            st = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    @contextlib.contextmanager
    def build_lock(self) -> Iterator[None]:
        """One build at a time, across processes; a killed build's lock goes with it."""
        with self._writing():
            self.index_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.index_dir / ".lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise BuildRunning(
                        f"another build of {self.index_dir} is running; wait for it to finish "
                        "and try again"
                    ) from None
                raise
            yield
        finally:
            handle.close()

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A read-only folder or a full disk: one line naming the folder and the cause."""
        try:
            yield
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise IndexWriteError(
                f"cannot write the index in {self.index_dir}{where}: {exc.strerror or exc}. "
                "Make the folder writable or free disk space, then build again; the index in "
                "service is unchanged"
            ) from None

    def write_build(
        self,
        manifest: dict[str, Any],
        documents: list[Document],
        passages: list[Passage],
        passage_vectors: np.ndarray,
        sentence_vectors: np.ndarray,
        lexical: Mapping[str, np.ndarray],
    ) -> str:
        """Write a complete build and make it current. Call under `build_lock()`.

        `lexical` holds the arrays of the lexical index (retrieval's BM25), stored as they are.
        """
        import faiss

        with self._writing():
            build_id = manifest["build_id"]
            self.builds_dir.mkdir(parents=True, exist_ok=True)
            self.remove_temporaries()
            tmp = self.builds_dir / f".tmp-{build_id}"
            tmp.mkdir()
            try:
                _write_json(tmp / "documents.json", [_document_record(d) for d in documents])
                _write_json(tmp / "passages.json", [_passage_record(p) for p in passages])
                np.save(tmp / "passages.npy", passage_vectors.astype(np.float32))
                np.save(tmp / "sentences.npy", sentence_vectors.astype(np.float32))
                index = faiss.IndexFlatIP(passage_vectors.shape[1])
                if len(passage_vectors):
                    index.add(passage_vectors.astype(np.float32))
                faiss.write_index(index, str(tmp / "dense.faiss"))
                with (tmp / "lexical.npz").open("wb") as handle:
                    np.savez(handle, **lexical)
                manifest = dict(manifest, files={name: sha256_file(tmp / name) for name in _FILES})
                _write_json(tmp / "manifest.json", manifest)
                _fsync_dir(tmp)
                os.rename(tmp, self.builds_dir / build_id)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _atomic_write_text(self.pointer, build_id + "\n")
            return build_id

    def prune(self, keep: int) -> list[str]:
        """Remove all but the newest `keep` builds; the current one is never removed."""
        current = self.current_build_id()
        builds = sorted(
            (p for p in self.builds_dir.glob("*") if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: (p.stat().st_mtime_ns, p.name),  # ids of one second tie by name
            reverse=True,
        )
        kept = {current} | {p.name for p in builds[:keep]}
        removed = []
        for path in builds:
            if path.name not in kept:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    def remove_temporaries(self) -> None:
        """Remove what a build killed half-way left: a build folder being written, a pointer
        being replaced. Call under `build_lock()` only, so no live write is touched."""
        for path in self.builds_dir.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.index_dir.glob(f".{self.pointer.name}.*.tmp"):
            path.unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------

    def read_manifest(self, build_id: str | None = None) -> dict[str, Any]:
        build_id = build_id or self.current_build_id()
        if build_id is None:
            raise IndexNotReady(
                f"no index has been built in {self.index_dir}: run `qa-service build` "
                "(or POST /api/index/rebuild)"
            )
        folder = self.builds_dir / build_id
        path = folder / "manifest.json"
        if not folder.is_dir():
            raise IndexNotReady(
                f"{self.pointer} names build {build_id}, but {folder} is "
                f"{'not a folder' if folder.exists() else 'missing'}: {_REBUILD}"
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(f"{path} is missing: {_REBUILD}") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise IndexFormatError(f"{path} cannot be read ({exc}): {_REBUILD}") from None
        if not isinstance(manifest, dict):
            raise IndexFormatError(f"{path} is not a manifest (not a JSON object): {_REBUILD}")
        return manifest

    def verify(self, build_id: str, manifest: dict[str, Any], expected_model: str) -> Path:
        """The folder of build `build_id` (whose manifest is `manifest`), once its format,
        model and every file's checksum are what they should be; an `IndexFormatError` naming
        the file otherwise."""
        check_manifest(manifest, expected_model, self.index_dir)
        folder = self.builds_dir / build_id
        files = manifest.get("files")
        if not isinstance(files, dict) or set(files) != set(_FILES):
            raise IndexFormatError(
                f"{folder / 'manifest.json'} does not list the checksums of its files "
                f"({', '.join(_FILES)}), so the build cannot be checked: {_REBUILD}"
            )
        for name, digest in files.items():
            try:
                actual = sha256_file(folder / name)
            except OSError as exc:
                raise IndexFormatError(
                    f"{folder / name} cannot be read ({exc.strerror}): {_REBUILD}"
                ) from None
            if actual != digest:
                raise IndexFormatError(
                    f"{folder / name} does not match its manifest (damaged or edited): "
                    "run `qa-service build` to rebuild"
                )
        return folder

    def load(self, expected_model: str, build_id: str | None = None) -> IndexData:
        """Load the current build (or `build_id`), refusing one of another format version or
        model, one whose manifest lacks checksums, and one whose files do not match them.

        Every failure is an `IndexNotReady` (503) whose message names the file and says to
        rebuild; nothing else escapes.
        """
        build_id = build_id or self.current_build_id()
        manifest = self.read_manifest(build_id)
        assert build_id is not None
        folder = self.verify(build_id, manifest, expected_model)
        try:
            return self._read_build(build_id, manifest, folder)
        except IndexNotReady:
            raise
        except Exception as exc:  # checksums matched, yet unreadable: written by another tool
            raise IndexFormatError(f"{folder} cannot be loaded ({exc!r}): {_REBUILD}") from None

    def _read_build(self, build_id: str, manifest: dict[str, Any], folder: Path) -> IndexData:
        import faiss

        documents = [
            _document_from_record(r) for r in _read_json(folder / "documents.json")
        ]
        texts = {d.source: d.text for d in documents}
        passages = [
            _passage_from_record(r, texts[r["source"]])
            for r in _read_json(folder / "passages.json")
        ]
        # Memory-mapped: pages are read when a question touches them and shared by the worker
        # processes through the page cache. A build's files are never changed in place.
        passage_vectors = np.load(folder / "passages.npy", mmap_mode="r")
        sentence_vectors = np.load(folder / "sentences.npy", mmap_mode="r")
        rows, row = [], 0
        for passage in passages:
            rows.append(list(range(row, row + len(passage.sentences))))
            row += len(passage.sentences)
        if row != len(sentence_vectors) or len(passages) != len(passage_vectors):
            raise IndexFormatError(
                f"{folder}: vectors and passages disagree in number: run `qa-service build`"
            )
        with np.load(folder / "lexical.npz", allow_pickle=False) as stored:
            lexical = {name: stored[name] for name in stored.files}
        return IndexData(
            build_id=build_id,
            manifest=manifest,
            documents={d.source: d for d in documents},
            passages=passages,
            passage_vectors=passage_vectors,
            sentence_vectors=sentence_vectors,
            sentence_rows=rows,
            faiss_index=faiss.read_index(str(folder / "dense.faiss")),
            lexical=lexical,
        )

    def is_kept(self, build_id: str) -> bool:
        return bool(_BUILD_ID.fullmatch(build_id)) and (self.builds_dir / build_id).is_dir()

    def read_documents(self, build_id: str) -> tuple[dict[str, Document], dict[str, Any]]:
        """The documents (cleaned texts) and manifest of a kept build, checked against it.

        NotFound when the build is not on disk (pruned, or never existed)."""
        if not self.is_kept(build_id):
            raise NotFound(
                f"index version {build_id!r} is not kept (only the newest QA_KEEP_BUILDS builds "
                "are); fetch the source without ?version= and ask the question again to cite "
                "the current text"
            )
        manifest = self.read_manifest(build_id)
        path = self.builds_dir / build_id / "documents.json"
        try:
            if sha256_file(path) != manifest.get("files", {}).get("documents.json"):
                raise IndexFormatError(f"{path} does not match its manifest: {_REBUILD}")
            documents = {r["source"]: _document_from_record(r) for r in _read_json(path)}
            return documents, manifest
        except FileNotFoundError:  # pruned while being read
            raise NotFound(f"index version {build_id!r} is no longer kept; fetch the source "
                           "without ?version=") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{path} cannot be read ({exc}): {_REBUILD}") from None

    def kept_builds(self) -> list[str]:
        """Ids of the complete builds on disk."""
        if not self.builds_dir.is_dir():
            return []
        return sorted(p.name for p in self.builds_dir.iterdir()
                      if p.is_dir() and _BUILD_ID.fullmatch(p.name))


def check_manifest(manifest: dict[str, Any], expected_model: str, where: Path) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"the index in {where} has format version {version}, this service reads version "
            f"{FORMAT_VERSION}: run `qa-service build` to rebuild it"
        )
    model = manifest.get("model")
    built_with = model.get("name") if isinstance(model, dict) else None
    if built_with != expected_model:
        raise IndexFormatError(
            f"the index in {where} was built with model {built_with!r} but QA_MODEL is "
            f"{expected_model!r}: run `qa-service build` to rebuild it with this model, or set "
            "QA_MODEL to the index's model"
        )


# -- records ----------------------------------------------------------------------------------

def _document_record(doc: Document) -> dict[str, Any]:
    return {
        "source": doc.source,
        "title": doc.title,
        "metadata": doc.metadata,
        "sha256": doc.sha256,
        "pages": [list(p) for p in doc.pages],
        "text": doc.text,
    }


def _document_from_record(r: dict[str, Any]) -> Document:
    return Document(
        source=r["source"],
        title=r["title"],
        metadata=r["metadata"],
        text=r["text"],
        sha256=r["sha256"],
        pages=tuple((int(a), int(b)) for a, b in r.get("pages", [])),
    )


def _passage_record(p: Passage) -> dict[str, Any]:
    return {
        "chunk_id": p.chunk_id,
        "source": p.source,
        "start": p.start,
        "end": p.end,
        "sentences": [[s.start, s.end] for s in p.sentences],
        "content_hash": p.content_hash,
        "sentence_hashes": [sentence_hash(p.text, p.start, s) for s in p.sentences],
    }


def sentence_hash(passage_text: str, passage_start: int, span: Span) -> str:
    text = passage_text[span.start - passage_start:span.end - passage_start]
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def previous_vectors(store: IndexStore, model: str) -> dict[str, np.ndarray]:
    """content hash → vector from the current build, when it was made with `model`.

    Lets a rebuild embed only what changed. Anything unreadable just means nothing is reused.
    """
    try:
        manifest = store.read_manifest()
        check_manifest(manifest, model, store.index_dir)
        folder = store.builds_dir / manifest["build_id"]
        records = _read_json(folder / "passages.json")
        # Memory-mapped: only the rows reused are read.
        passage_vectors = np.load(folder / "passages.npy", mmap_mode="r")
        sentence_vectors = np.load(folder / "sentences.npy", mmap_mode="r")
    except (IndexNotReady, OSError, ValueError, KeyError):
        return {}
    cache: dict[str, np.ndarray] = {}
    row = 0
    for i, record in enumerate(records):
        cache[record["content_hash"]] = passage_vectors[i]
        for digest in record.get("sentence_hashes", []):
            cache[digest] = sentence_vectors[row]
            row += 1
    return cache


def _passage_from_record(r: dict[str, Any], document_text: str) -> Passage:
    # The passage text is not stored twice: it is cut from the document on load.
    return Passage(
        chunk_id=r["chunk_id"],
        source=r["source"],
        start=r["start"],
        end=r["end"],
        text=document_text[r["start"]:r["end"]],
        sentences=tuple(Span(a, b) for a, b in r["sentences"]),
    )


# -- files ------------------------------------------------------------------------------------

def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _atomic_write_text(path: Path, text: str) -> None:
    """Write beside the target and `os.replace` it: a failed write never replaces it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
