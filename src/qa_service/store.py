"""Everything under the index folder: immutable segments, builds that list them, a commit point.

On disk (format version 3)::

    index/
      CURRENT                 the id of the build in service (replaced atomically)
      .lock                   held (flock) by the one build that may run at a time
      builds/<build-id>/
        manifest.json         format version, model, chunking, the segments in order with the
                              documents of each that are dead, and each source's sha256, size,
                              mtime and place
      segments/<segment-id>/  the documents one build added (see segments.py)

A build writes a segment of the documents that are new or changed (none when only some were
removed), then a manifest that lists it after the earlier builds' segments, marking the rows of
removed and changed documents dead. Builds share segments; a segment is never changed once
written, and is removed only when no kept build lists it. Past `MAX_SEGMENTS`, or when half a
segment is dead, segments are merged into one (their arrays copied, nothing embedded).

A segment or build is written to a `.tmp-` folder and renamed into place; the build is committed
by replacing CURRENT. Readers only ever follow CURRENT, so they never see a half-written build.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .chunking import Passage
from .errors import BuildRunning, IndexFormatError, IndexNotReady, IndexWriteError, NotFound
from .lexical import LexicalIndex
from .segments import Parts, Segment, fsync
from .sources import Document

# 2: the lexical index (BM25 postings) is written with the build, not rebuilt at every load.
# 3: segments of memory-mapped arrays shared between builds; no JSON that grows with the texts.
FORMAT_VERSION = 3
# What a build id may look like: new_build_id()'s ids and plain names, never a path.
_BUILD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REBUILD = "run `qa-service build` to make a new build"


class IndexData:
    """One loaded build: its segments, numbered one after another (segment i's row r is row
    `offsets[i] + r`), with the rows of removed documents masked dead. Read-only once made, so
    requests share it across threads; its arrays are memory-mapped and shared between worker
    processes through the page cache."""

    def __init__(self, build_id: str, manifest: dict[str, Any], segments: Sequence[Segment],
                 deleted: Sequence[Sequence[int]]) -> None:
        self.build_id = build_id
        self.manifest = manifest
        self.segments = list(segments)
        self.offsets = np.concatenate(([0], np.cumsum([s.size for s in self.segments])))\
            .astype(np.int64)
        # alive[i]: a mask over segment i's rows, None when none of them is dead.
        self.alive: list[np.ndarray | None] = []
        self._where: dict[str, tuple[int, int]] = {}  # source → (segment, document number)
        for i, (segment, dead) in enumerate(zip(self.segments, deleted)):
            dead_set = set(dead)
            self.alive.append(segment.alive(dead_set))
            for number, record in enumerate(segment.records):
                if number not in dead_set:
                    self._where[record.source] = (i, number)
        self.documents: Mapping[str, Document] = _Documents(self)
        self.passages: Sequence[Passage] = _Passages(self)
        self.live_passages = sum(s.size if a is None else int(a.sum())
                                 for s, a in zip(self.segments, self.alive))
        self.lexical = LexicalIndex([s.postings for s in self.segments], self.alive)

    @property
    def model(self) -> str:
        return self.manifest["model"]["name"]

    def where(self, source: str) -> tuple[int, int]:
        """(segment, document number) of a live document; KeyError when unknown."""
        return self._where[source]

    def record(self, source: str) -> Any:
        """The `DocRecord` of a live document (metadata, no text); KeyError when unknown."""
        segment, number = self._where[source]
        return self.segments[segment].records[number]

    def locate(self, row: int) -> tuple[int, int]:
        """(segment, its row) of global row `row`."""
        segment = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return segment, row - int(self.offsets[segment])

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Passage vectors of `rows` (float32), in their order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for segment in np.unique(which):
            at = which == segment
            out[at] = self.segments[segment].passage_vectors[rows[at] - self.offsets[segment]]
        return out

    @property
    def dimension(self) -> int:
        return int(self.manifest["model"]["dimension"])

    def sentence_vector(self, passage: int, sentence: int) -> np.ndarray:
        """The vector of sentence `sentence` of passage row `passage`."""
        segment, row = self.locate(passage)
        return self.segments[segment].sentence_vector(row, sentence)

    def passage_before(self, row: int) -> Passage | None:
        """The passage just before row `row` in the same document, if any."""
        segment, local = self.locate(row)
        if local == 0:
            return None
        seg = self.segments[segment]
        if seg.passage_doc[local - 1] != seg.passage_doc[local]:
            return None
        return seg.passage(local - 1)

    def row_documents(self) -> tuple[list[str], np.ndarray]:
        """(live sources, and for every row the number of its source in that list, -1 when the
        row is dead): what a filter by source needs."""
        names = list(self._where)
        code = {s: i for i, s in enumerate(names)}
        parts = []
        for segment, alive in zip(self.segments, self.alive):
            per_doc = np.asarray([code.get(r.source, -1) for r in segment.records]
                                 + [-1], dtype=np.int32)
            rows = per_doc[np.asarray(segment.passage_doc, dtype=np.int64)]
            if alive is not None:
                rows = np.where(alive, rows, -1)
            parts.append(rows)
        return names, (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))

    def acronyms(self) -> dict[str, frozenset[str]]:
        """Acronyms the live documents define, with the tokens of their long forms."""
        out: dict[str, set[str]] = {}
        for source in self._where:
            for key, words in self.record(source).acronyms.items():
                out.setdefault(key, set()).update(words)
        return {k: frozenset(v) for k, v in out.items()}


class _Documents(Mapping[str, Document]):
    """source → Document of the live documents; each text is decoded when asked for."""

    def __init__(self, data: IndexData) -> None:
        self._data = data

    def __getitem__(self, source: str) -> Document:
        segment, number = self._data._where[source]
        return self._data.segments[segment].document(number)

    def __contains__(self, source: object) -> bool:
        return source in self._data._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._data._where)

    def __len__(self) -> int:
        return len(self._data._where)


class _Passages(Sequence[Passage]):
    """Row → Passage over all segments (dead rows included), made when asked for."""

    def __init__(self, data: IndexData) -> None:
        self._data = data

    def __len__(self) -> int:
        return int(self._data.offsets[-1])

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        segment, local = self._data.locate(row)
        return self._data.segments[segment].passage(local)


def new_build_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


class IndexStore:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.builds_dir = self.index_dir / "builds"
        self.segments_dir = self.index_dir / "segments"
        self.pointer = self.index_dir / "CURRENT"
        # Open segments, shared by every build loaded that lists them: a new build that adds
        # one segment opens only that one.
        self._open: dict[str, Segment] = {}

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

    def write_segment(self, parts: Parts) -> str:
        """Write `parts` as a new segment and return its id. Call under `build_lock()`."""
        with self._writing():
            segment_id = new_build_id()
            self.segments_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.segments_dir / f".tmp-{segment_id}"
            try:
                parts.write(tmp, segment_id)
                os.rename(tmp, self.segments_dir / segment_id)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return segment_id

    def commit(self, manifest: dict[str, Any]) -> str:
        """Write a build's manifest (its segments written already) and make it current. Call
        under `build_lock()`."""
        with self._writing():
            build_id = manifest["build_id"]
            self.builds_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.builds_dir / f".tmp-{build_id}"
            tmp.mkdir()
            try:
                _write_json(tmp / "manifest.json", manifest)
                fsync(tmp)
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
        listed: set[str] = set()
        for build_id in kept:
            try:
                listed.update(s["id"] for s in self.read_manifest(build_id).get("segments", []))
            except (IndexNotReady, TypeError, KeyError):
                return removed  # a build that cannot be read: keep every segment
        if self.segments_dir.is_dir():
            for path in self.segments_dir.iterdir():
                if path.is_dir() and not path.name.startswith(".") and path.name not in listed:
                    shutil.rmtree(path, ignore_errors=True)
                    self._open.pop(path.name, None)
        return removed

    def remove_temporaries(self) -> None:
        """Remove what a build killed half-way left: a build folder being written, a pointer
        being replaced. Call under `build_lock()` only, so no live write is touched."""
        for path in [*self.builds_dir.glob(".tmp-*"), *self.segments_dir.glob(".tmp-*")]:
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

    def segment(self, segment_id: str) -> Segment:
        """The segment `segment_id`, opened once (its files' sizes checked) and then shared."""
        segment = self._open.get(segment_id)
        if segment is None:
            if not _BUILD_ID.fullmatch(str(segment_id)):
                raise IndexFormatError(f"a manifest in {self.builds_dir} lists a segment "
                                       f"{segment_id!r}, which is no segment id: {_REBUILD}")
            folder = self.segments_dir / segment_id
            if not folder.is_dir():
                raise IndexFormatError(f"{folder} is missing: {_REBUILD}")
            segment = self._open[segment_id] = Segment(folder)
        return segment

    def verify(self, build_id: str, manifest: dict[str, Any], expected_model: str,
               full: bool = False) -> list[Segment]:
        """The segments of build `build_id` (whose manifest is `manifest`), once its format and
        model are what they should be and every file has the size written for it; with `full`,
        every byte is read and checked against its sha256 too (`qa-service check`). An
        `IndexFormatError` naming the file otherwise."""
        check_manifest(manifest, expected_model, self.index_dir)
        listed = manifest.get("segments")
        if not isinstance(listed, list) or not all(
                isinstance(s, dict) and isinstance(s.get("deleted", []), list) for s in listed):
            raise IndexFormatError(
                f"{self.builds_dir / build_id / 'manifest.json'} does not list its segments: "
                f"{_REBUILD}")
        segments = [self.segment(s.get("id")) for s in listed]
        if full:
            for segment in segments:
                segment.verify()
        return segments

    def load(self, expected_model: str, build_id: str | None = None) -> IndexData:
        """Load the current build (or `build_id`), refusing one of another format version or
        model, and one whose files are missing or of another size than written.

        Every failure is an `IndexNotReady` (503) whose message names the file and says to
        rebuild; nothing else escapes.
        """
        build_id = build_id or self.current_build_id()
        manifest = self.read_manifest(build_id)
        assert build_id is not None
        segments = self.verify(build_id, manifest, expected_model)
        try:
            return IndexData(build_id, manifest, segments,
                             [s.get("deleted", []) for s in manifest["segments"]])
        except IndexNotReady:
            raise
        except Exception as exc:  # sizes matched, yet unreadable: written by another tool
            raise IndexFormatError(f"{self.builds_dir / build_id} cannot be loaded ({exc!r}): "
                                   f"{_REBUILD}") from None

    def is_kept(self, build_id: str) -> bool:
        return bool(_BUILD_ID.fullmatch(build_id)) and (self.builds_dir / build_id).is_dir()

    def read_documents(self, build_id: str) -> tuple[Mapping[str, Document], dict[str, Any]]:
        """The documents (cleaned texts, read when asked for) and manifest of a kept build.

        NotFound when the build is not on disk (pruned, or never existed)."""
        if not self.is_kept(build_id):
            raise NotFound(
                f"index version {build_id!r} is not kept (only the newest QA_KEEP_BUILDS builds "
                "are); fetch the source without ?version= and ask the question again to cite "
                "the current text"
            )
        manifest = self.read_manifest(build_id)
        try:
            listed = manifest["segments"]
            data = IndexData(build_id, manifest, [self.segment(s["id"]) for s in listed],
                             [s.get("deleted", []) for s in listed])
        except FileNotFoundError:  # pruned while being read
            raise NotFound(f"index version {build_id!r} is no longer kept; fetch the source "
                           "without ?version=") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{self.builds_dir / build_id} cannot be read ({exc}): "
                                   f"{_REBUILD}") from None
        return data.documents, manifest

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


# -- files ------------------------------------------------------------------------------------

def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _atomic_write_text(path: Path, text: str) -> None:
    """Write beside the target and `os.replace` it: a failed write never replaces it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
