"""The lexical index: BM25 over per-segment inverted indexes, with index-wide statistics.

Each segment of the index stores `Postings`: for every term, the rows (passages) that hold it
and how often, in flat arrays sliced by `ptr` (a sparse matrix in CSC form), plus each row's
length. Nothing is weighted at build time, so a segment written once stays valid as others are
added: `LexicalIndex` computes BM25 at query time from index-wide figures over the live passages
(number, average length, each term's document frequency), so the scores are those of one index
built over everything at once.

Search touches only candidates. `LexicalIndex.top` reads the postings of a question's terms,
rarest first, up to a budget of postings. A question whose postings fit is ranked exactly. When
terms remain, a MaxScore check decides whether they could change the list: the best rows read,
completed with the other terms' weights by binary search, set a floor, and if no row the read
terms missed can reach it (the unread terms add at most their upper bounds), the list is exact.
Otherwise the rows read are ranked by their exact scores. A term in most passages ("China" in a
corpus about China) is then never read in full.

BM25 is written here rather than taken from a package: it is a few array operations over
arrays that must be memory-mapped, built with the tokeniser in `text.py`, which keeps
designations such as "Su-27SK" whole.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

K1 = 1.2  # Okapi BM25's usual constants, as Lucene, tantivy and bm25s use them
B = 0.75
# Posting lists this long keep their computed weights (the 64 last used, 8 bytes a posting): at
# a million passages a term in half of them takes about 10 ms to weigh, a remembered one none.
_CACHED_POSTINGS = 4096
# Postings `top` reads in full before it ranks by what it has read: every question on the shipped
# and gold corpora stays within it (exact lists). On a million synthetic passages, where every
# question term is in thousands of passages, 83 of the 100 gold questions pass it; measured there
# (share of the exact top-100 scores reached, and answer p95 over the gold questions): 250,000
# postings 0.98, 61 ms; 100,000 0.81, 45 ms. Lists are kept good over fast.
BUDGET = 250_000
# Past the budget, the best this many times `limit` rows by partial score get exact scores.
COMPLETED = 10
FILES = ("terms.bin", "term_ends.npy", "term_ptr.npy", "post_rows.npy", "post_tf.npy",
         "lengths.npy", "term_maxtf.npy", "term_minlen.npy")


class Terms(Sequence[str]):
    """A sorted vocabulary in one UTF-8 blob and its end offsets: opens without reading it,
    and `index(term)` is a binary search of a few dozen bytes."""

    def __init__(self, blob: bytes | np.ndarray, ends: np.ndarray) -> None:
        self._blob = memoryview(blob).cast("B") if not isinstance(blob, bytes) else blob
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start = int(self._ends[i - 1]) if i > 0 else 0
        return bytes(self._blob[start:int(self._ends[i])]).decode("utf-8")

    def index(self, term: str, *_: object) -> int:  # type: ignore[override]
        """Position of `term`, or -1."""
        at = bisect.bisect_left(self, term)
        return at if at < len(self) and self[at] == term else -1

    @staticmethod
    def encode(terms: Sequence[str]) -> tuple[bytes, np.ndarray]:
        raw = [t.encode("utf-8") for t in terms]
        return b"".join(raw), np.cumsum([len(r) for r in raw], dtype=np.int64)


class Postings:
    """One segment's inverted index: rows are the segment's own passage rows."""

    def __init__(self, terms: Terms, ptr: np.ndarray, rows: np.ndarray, tf: np.ndarray,
                 lengths: np.ndarray, maxtf: np.ndarray, minlen: np.ndarray) -> None:
        self.terms, self.ptr, self.rows, self.tf = terms, ptr, rows, tf
        self.lengths, self.maxtf, self.minlen = lengths, maxtf, minlen
        self.column = lru_cache(maxsize=65536)(self.terms.index)  # term → position, or -1

    @property
    def size(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, documents: Sequence[Sequence[str]]) -> Postings:
        """The postings of `documents` (each a list of terms), one row each."""
        counts = [Counter(doc) for doc in documents]
        vocabulary = sorted({t for c in counts for t in c})
        position = {t: i for i, t in enumerate(vocabulary)}
        cols = np.fromiter((position[t] for c in counts for t in c), dtype=np.int64)
        tf = np.fromiter((n for c in counts for n in c.values()), dtype=np.int64)
        rows = np.repeat(np.arange(len(counts), dtype=np.int32), [len(c) for c in counts])
        lengths = np.asarray([len(doc) for doc in documents], dtype=np.int32)
        return cls._from_coo(vocabulary, cols, rows, tf, lengths)

    @classmethod
    def _from_coo(cls, vocabulary: Sequence[str], cols: np.ndarray, rows: np.ndarray,
                  tf: np.ndarray, lengths: np.ndarray) -> Postings:
        order = np.lexsort((rows, cols))  # by term, then by row
        cols, rows, tf = cols[order], rows[order].astype(np.int32), tf[order]
        count = np.bincount(cols, minlength=len(vocabulary))
        ptr = np.concatenate(([0], np.cumsum(count))).astype(np.int64)
        maxtf = np.zeros(len(vocabulary), dtype=np.int64)
        minlen = np.zeros(len(vocabulary), dtype=np.int64)
        if len(cols):
            nonempty = count > 0
            maxtf[nonempty] = np.maximum.reduceat(tf, ptr[:-1][nonempty])
            minlen[nonempty] = np.minimum.reduceat(lengths[rows], ptr[:-1][nonempty])
        blob, ends = Terms.encode(vocabulary)
        return cls(Terms(blob, ends), ptr, rows, np.minimum(tf, 65535).astype(np.uint16),
                   lengths.astype(np.int32), np.minimum(maxtf, 65535).astype(np.uint16),
                   minlen.astype(np.int32))

    @classmethod
    def merge(cls, parts: Sequence[tuple[Postings, np.ndarray]]) -> Postings:
        """One index of several: `parts` pairs each index with its rows' new numbers (-1 for a
        row left out); the new rows number 0..n-1 in all."""
        vocabulary = sorted(set().union(*(set(p.terms) for p, _ in parts)))
        position = {t: i for i, t in enumerate(vocabulary)}
        cols, rows, tf = [], [], []
        size = sum(int((renumber >= 0).sum()) for _, renumber in parts)
        lengths = np.zeros(size, dtype=np.int64)
        for postings, renumber in parts:
            keep_rows = renumber >= 0
            lengths[renumber[keep_rows]] = postings.lengths[keep_rows]
            to_new = np.fromiter((position[t] for t in postings.terms), dtype=np.int64,
                                 count=len(postings.terms))
            col = np.repeat(to_new, np.diff(postings.ptr))
            row = renumber[postings.rows]
            keep = row >= 0
            cols.append(col[keep])
            rows.append(row[keep])
            tf.append(postings.tf[keep].astype(np.int64))
        used = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        # Terms only the rows left out held are dropped from the vocabulary.
        present = np.zeros(len(vocabulary), dtype=bool)
        present[used] = True
        renumber_terms = np.cumsum(present) - 1
        kept_vocabulary = [t for t, p in zip(vocabulary, present) if p]
        return cls._from_coo(kept_vocabulary, renumber_terms[used],
                             np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32),
                             np.concatenate(tf) if tf else np.zeros(0, dtype=np.int64), lengths)

    def save(self, folder: Path) -> None:
        blob, ends = Terms.encode(list(self.terms))
        (folder / "terms.bin").write_bytes(blob)
        for name, array in (("term_ends", ends), ("term_ptr", self.ptr),
                            ("post_rows", self.rows), ("post_tf", self.tf),
                            ("lengths", self.lengths), ("term_maxtf", self.maxtf),
                            ("term_minlen", self.minlen)):
            np.save(folder / f"{name}.npy", array)

    @classmethod
    def open(cls, folder: Path) -> Postings:
        """Memory-mapped: only the postings a question reads are paged in."""
        def load(name: str) -> np.ndarray:
            # A plain view of the mapping: indexing np.memmap itself is slow.
            return np.load(folder / f"{name}.npy", mmap_mode="r").view(np.ndarray)

        path = folder / "terms.bin"
        blob = (np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)
                if path.stat().st_size else b"")
        return cls(Terms(blob, load("term_ends")), load("term_ptr"), load("post_rows"),
                   load("post_tf"), load("lengths"), load("term_maxtf"), load("term_minlen"))


class LexicalIndex:
    """BM25 over the live rows of several segments' postings, numbered one after another
    (segment i's row r is row `offsets[i] + r`); `alive` masks the rows of removed documents
    (None: all alive)."""

    def __init__(self, segments: Sequence[Postings], alive: Sequence[np.ndarray | None],
                 k1: float = K1, b: float = B) -> None:
        self.segments = list(segments)
        self.alive = list(alive)
        self.k1, self.b = k1, b
        sizes = [p.size for p in self.segments]
        self.offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        live_lengths = [p.lengths if a is None else p.lengths[a]
                        for p, a in zip(self.segments, self.alive)]
        self.size = int(sum(len(x) for x in live_lengths))  # live passages
        total = float(sum(float(np.sum(x, dtype=np.float64)) for x in live_lengths))
        self.avg_length = total / self.size if self.size else 0.0
        self._doc_freq = lru_cache(maxsize=65536)(self._count)
        self._long_weights = lru_cache(maxsize=64)(self._weigh_long)
        # The most a term adds to any row: the tighter, the sooner `top` stops reading. Exact
        # for a list that has been weighed; from its largest tf and shortest row otherwise.
        self._largest: dict[tuple[int, int], float] = {}

    # -- index-wide statistics ----------------------------------------------------------------

    def doc_freq(self, term: str) -> int:
        """Live passages that hold `term`."""
        return self._doc_freq(term)

    def _count(self, term: str) -> int:
        total = 0
        for postings, alive in zip(self.segments, self.alive):
            col = postings.column(term)
            if col < 0:
                continue
            lo, hi = int(postings.ptr[col]), int(postings.ptr[col + 1])
            total += hi - lo if alive is None else int(alive[postings.rows[lo:hi]].sum())
        return total

    def idf(self, term: str) -> float:
        df = self.doc_freq(term)
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def common_terms(self, share: float) -> frozenset[str]:
        """Terms in at least `share` of the live passages. A term that common overall is that
        common in some segment, so only each segment's common terms are counted."""
        found: set[str] = set()
        for postings, alive in zip(self.segments, self.alive):
            live = postings.size if alive is None else int(alive.sum())
            counts = np.diff(postings.ptr)
            for col in np.flatnonzero(counts >= max(1.0, share * live)):
                found.add(postings.terms[int(col)])
        return frozenset(t for t in found if self.doc_freq(t) >= share * self.size)

    def doc_freqs(self) -> Mapping[str, int]:
        """term → live document frequency, looked up on demand."""
        return _DocFreq(self)

    # -- scoring ------------------------------------------------------------------------------

    def top(self, terms: Mapping[str, float], limit: int, allowed: np.ndarray | None = None,
            budget: int | None = BUDGET) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the best `limit` BM25 scores (ascending rows) among the live rows
        `allowed` (a mask over all rows; None: every live row) and their scores, each term's
        part multiplied by its weight in `terms`.

        Exact whenever the terms read within `budget` postings decide it (always, with `budget`
        None). Past the budget, the rows the rarest terms hold are ranked: the best by what
        those terms give are completed with the other terms' weights (exact scores), and the
        best of them returned; a row holding only the commonest terms can then be missed."""
        # Terms cheapest to read first; a rare term also bounds the others most tightly.
        parts = sorted(self._parts(terms), key=lambda p: p.count)
        size = int(self.offsets[-1])
        scores = np.zeros(size, dtype=np.float64)
        touched: list[np.ndarray] = []  # while few, the rows read
        count = 0  # postings read
        for read, part in enumerate(parts):
            if budget is not None and count and count + part.count > budget:
                rest = parts[read:]
                rows = self._rows_read(scores, count, size, touched, allowed)
                exact = self._maxscore(scores, rows, rest, limit)
                return exact if exact is not None else self._best_of_read(scores, rows, rest,
                                                                          limit)
            for segment, lo, hi in part.slices:
                start = int(self.offsets[segment])
                local = self.segments[segment].rows[lo:hi]
                view = scores[start:start + self.segments[segment].size]
                view[local] += part.idf * self._slice_weights(segment, lo, hi)
                count += hi - lo
                if 16 * count < size:
                    touched.append(local.astype(np.int64) + start)
        rows = self._rows_read(scores, count, size, touched, allowed)
        return self._best(rows, scores[rows], limit)

    def _maxscore(self, scores: np.ndarray, rows: np.ndarray, rest: Sequence[_Term],
                  limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The exact top list when the terms read decide it, else None.

        MaxScore: a row the read terms missed scores at most `bound`, what the unread terms
        can add. The best `limit` rows by what the read terms gave, completed, put a floor
        under the `limit`-th score; when it is above `bound`, the top rows are among those
        read, and only the ones that can still reach the floor need completing."""
        if len(rows) < limit:
            return None
        bound = sum(p.bound for p in rest)
        partial = scores[rows]
        best = np.sort(rows[np.argpartition(-partial, limit - 1)[:limit]])
        floor = float((scores[best] + self._lookup(rest, best)).min())
        if floor <= bound:
            return None
        rows = rows[partial + bound >= floor]
        return self._best(rows, scores[rows] + self._lookup(rest, rows), limit)

    def _rows_read(self, scores: np.ndarray, count: int, size: int, touched: list[np.ndarray],
                   allowed: np.ndarray | None) -> np.ndarray:
        """The live, allowed rows the terms read hold: sorted from their postings while few,
        found in the scores (one pass over every row) once that is cheaper."""
        if not count:
            return np.zeros(0, dtype=np.int64)
        rows = np.unique(np.concatenate(touched)) if 16 * count < size else np.flatnonzero(
            scores)
        return rows[self._live(rows, allowed)]

    def _best_of_read(self, scores: np.ndarray, rows: np.ndarray, rest: Sequence[_Term],
                      limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Past the budget: the best `limit` of the rows read, ranked by their exact scores
        after the best `COMPLETED` times `limit` by partial score are completed."""
        keep = COMPLETED * limit
        if len(rows) > keep:
            rows = np.sort(rows[np.argpartition(-scores[rows], keep - 1)[:keep]])
        return self._best(rows, scores[rows] + self._lookup(rest, rows), limit)

    def scores(self, terms: Mapping[str, float], rows: np.ndarray) -> np.ndarray:
        """The BM25 scores of `rows` (ascending; zero where no term occurs)."""
        rows = np.asarray(rows, dtype=np.int64)
        return self._lookup(self._parts(terms), rows).astype(np.float32)

    def _parts(self, terms: Mapping[str, float]) -> list[_Term]:
        out = []
        for term, weight in terms.items():
            if weight <= 0:  # a row's score is positive exactly when some term holds it
                continue
            df = self.doc_freq(term)
            if df == 0:
                continue
            idf = self.idf(term) * weight
            slices, bound = [], 0.0
            for i, postings in enumerate(self.segments):
                col = postings.column(term)
                if col < 0:
                    continue
                lo, hi = int(postings.ptr[col]), int(postings.ptr[col + 1])
                slices.append((i, lo, hi))
                bound = max(bound, self._max_weight(i, col, lo, hi))
            out.append(_Term(term, idf, slices, sum(hi - lo for _, lo, hi in slices),
                             idf * bound * (1 + 1e-6)))  # a margin over float rounding
        return out

    def _max_weight(self, segment: int, col: int, lo: int, hi: int) -> float:
        """The largest weight in a posting list: weighed when short or already weighed, else
        bounded from its largest term frequency and shortest row without reading it. Measured
        at a million passages: weighing every long list for its bound made the first pass over
        the gold questions p95 71 to 96 ms, bounding it 64 ms, with the same lists."""
        if hi <= lo:
            return 0.0
        if hi - lo < _CACHED_POSTINGS:
            return float(self._weights(segment, np.arange(lo, hi)).max())
        known = self._largest.get((segment, lo))
        if known is not None:
            return known
        postings = self.segments[segment]
        tf = float(postings.maxtf[col])
        norm = self.k1 * (1 - self.b + self.b * float(postings.minlen[col]) / self.avg_length)
        return tf * (self.k1 + 1) / (tf + norm)

    def _weigh_long(self, segment: int, lo: int, hi: int) -> np.ndarray:
        weights = self._weights(segment, np.arange(lo, hi))
        self._largest[(segment, lo)] = float(weights.max())
        return weights

    def _slice_weights(self, segment: int, lo: int, hi: int) -> np.ndarray:
        """`_weights` of a whole posting list: remembered for long lists (the common terms
        many questions share), computed for short ones."""
        if hi - lo < _CACHED_POSTINGS:
            return self._weights(segment, np.arange(lo, hi))
        return self._long_weights(segment, lo, hi)

    def _weights(self, segment: int, positions: np.ndarray) -> np.ndarray:
        """BM25's term-frequency part of postings `positions` of `segment` (no idf)."""
        postings = self.segments[segment]
        tf = postings.tf[positions].astype(np.float64)
        lengths = postings.lengths[postings.rows[positions]].astype(np.float64)
        norm = self.k1 * (1 - self.b + self.b * lengths / self.avg_length)
        return tf * (self.k1 + 1) / (tf + norm)

    def _lookup(self, parts: Sequence[_Term], rows: np.ndarray) -> np.ndarray:
        """Scores of `rows` (ascending) over `parts`, found by binary search in each term's
        postings (or, for many rows, by spreading the postings over all rows)."""
        out = np.zeros(len(rows), dtype=np.float64)
        if not len(rows):
            return out
        bounds = np.searchsorted(rows, self.offsets)
        for part in parts:
            for segment, lo, hi in part.slices:
                a, b = bounds[segment], bounds[segment + 1]
                if a == b:
                    continue
                local = rows[a:b] - self.offsets[segment]
                held = self.segments[segment].rows[lo:hi]
                if (b - a) * math.log2(hi - lo + 1) > 4 * (hi - lo):
                    # Many rows against a short list: spread the list out and read it there.
                    spread = np.zeros(self.segments[segment].size, dtype=np.float64)
                    spread[held] = self._slice_weights(segment, lo, hi)
                    out[a:b] += part.idf * spread[local]
                    continue
                at = np.searchsorted(held, local)
                found = at < len(held)
                found[found] = held[at[found]] == local[found]
                if found.any():
                    out[a:b][found] += part.idf * self._weights(segment, lo + at[found])
        return out

    def _live(self, rows: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        if allowed is not None:
            return allowed[rows]
        keep = np.ones(len(rows), dtype=bool)
        for segment, alive in enumerate(self.alive):
            if alive is None:
                continue
            inside = (rows >= self.offsets[segment]) & (rows < self.offsets[segment + 1])
            keep[inside] = alive[rows[inside] - self.offsets[segment]]
        return keep

    @staticmethod
    def _best(rows: np.ndarray, scores: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        if len(rows) > limit:
            pick = np.sort(np.argpartition(-scores, limit - 1)[:limit])
            rows, scores = rows[pick], scores[pick]
        return rows, scores.astype(np.float32)


class _Term:
    """One query term as scoring reads it: weighted idf, its postings in each segment, how
    many, and the most it can add to a row's score."""

    __slots__ = ("term", "idf", "slices", "count", "bound")

    def __init__(self, term: str, idf: float, slices: list[tuple[int, int, int]], count: int,
                 bound: float) -> None:
        self.term, self.idf, self.slices, self.count, self.bound = term, idf, slices, count, bound


class _DocFreq(Mapping[str, int]):
    """A read-only term → document frequency view that counts on demand."""

    def __init__(self, index: LexicalIndex) -> None:
        self._index = index

    def __getitem__(self, term: str) -> int:
        df = self._index.doc_freq(term)
        if not df:
            raise KeyError(term)
        return df

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self._index.doc_freq(term) > 0

    def get(self, term: str, default: int | None = None) -> int | None:  # type: ignore[override]
        return self._index.doc_freq(term) or default

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for postings in self._index.segments:
            for term in postings.terms:
                if term not in seen and self._index.doc_freq(term):
                    seen.add(term)
                    yield term

    def __len__(self) -> int:
        return sum(1 for _ in self)
