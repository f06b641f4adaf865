"""Dense (FAISS) and lexical (BM25) retrieval over passages, fused by score.

Both searches touch only candidates: FAISS is asked for the best `CANDIDATES` passages, BM25
reads only the postings of the query's terms, and fusion scores the union of the two lists.

BM25 is written here rather than taken from a package: it is a few array operations over an
inverted index (per term, the rows that hold it and their precomputed BM25 weights) built with
the shared tokeniser in `text.py`, which keeps designations such as "Su-27SK" whole. The index
is built once with the build and stored with it (`to_arrays`), not rebuilt at each load.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import faiss
import numpy as np

from .chunking import Passage
from .store import IndexData
from .text import tokens

LEXICAL_WEIGHT = 0.5  # share of the scaled BM25 score added to the cosine
# Passages each search contributes to fusion (at least top_k). Measured on the 1,044 training
# questions over 163 passages: with 5 each, the fused top 5 is the exhaustive one for every
# question; the top 20 needs 50. 100 leaves a margin of 5 over the largest top_k a request may
# ask; tests/test_retrieval.py checks a cut-down list against an exhaustive fusion.
CANDIDATES = 100


@dataclasses.dataclass(frozen=True)
class Hit:
    index: int  # row of the passage in the index
    passage: Passage
    score: float  # fused score, higher is better
    dense: float  # cosine similarity of passage and query
    lexical: float  # BM25 score
    rank: int  # 1-based rank after fusion


class BM25:
    """Okapi BM25 over an inverted index: for each term, the rows that hold it (ascending) and
    each row's term weight idf · tf·(k1+1) / (tf + k1·(1 − b + b·len/avg)), in flat arrays
    sliced by `offsets`, as a sparse matrix in CSC form keeps them."""

    def __init__(self, rows: np.ndarray, weights: np.ndarray, offsets: np.ndarray,
                 terms: Sequence[str], size: int, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.size = size
        self.rows, self.weights, self.offsets = rows, weights, offsets
        df = np.diff(offsets)
        idf = np.log(1 + (size - df + 0.5) / (df + 0.5))
        self.terms = {str(t): i for i, t in enumerate(terms)}
        self.doc_freq = dict(zip(self.terms, df.tolist()))
        self.idf = dict(zip(self.terms, idf.tolist()))

    @classmethod
    def build(cls, documents: Sequence[list[str]], k1: float = 1.2, b: float = 0.75) -> BM25:
        """The index of `documents` (each a list of terms), one row each."""
        n = len(documents)
        terms: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        freqs: list[int] = []
        lengths = np.zeros(n, dtype=np.float32)
        for row, doc in enumerate(documents):
            lengths[row] = len(doc)
            for term, tf in Counter(doc).items():
                rows.append(row)
                cols.append(terms.setdefault(term, len(terms)))
                freqs.append(tf)
        col = np.asarray(cols, dtype=np.int64)
        df = np.bincount(col, minlength=len(terms))
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        avg = float(lengths.mean()) if n else 0.0
        tf = np.asarray(freqs, dtype=np.float32)
        row_of = np.asarray(rows, dtype=np.int64)
        norm = k1 * (1 - b + b * lengths[row_of] / avg) if avg else np.ones_like(tf)
        weight = (idf[col] * tf * (k1 + 1) / (tf + norm)).astype(np.float32)
        order = np.lexsort((row_of, col))  # by term, then by row
        offsets = np.concatenate(([0], np.cumsum(df))).astype(np.int64)
        return cls(row_of[order].astype(np.int32), weight[order], offsets, list(terms), n, k1, b)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What `from_arrays` needs, as plain arrays the store writes with a build."""
        return {"rows": self.rows, "weights": self.weights, "offsets": self.offsets,
                "terms": np.array(list(self.terms), dtype=str),
                "params": np.array([self.size, self.k1, self.b], dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> BM25:
        size, k1, b = arrays["params"].tolist()
        return cls(arrays["rows"], arrays["weights"], arrays["offsets"],
                   arrays["terms"].tolist(), int(size), k1, b)

    def postings(
        self, query: Sequence[str], weights: dict[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rows any query term is in (ascending) and their BM25 scores, each term's part
        multiplied by its weight (1 when not given)."""
        parts_rows, parts_scores = [], []
        for term in set(query):
            col = self.terms.get(term)
            if col is None:
                continue
            lo, hi = self.offsets[col], self.offsets[col + 1]
            parts_rows.append(self.rows[lo:hi])
            parts_scores.append(self.weights[lo:hi] * np.float32((weights or {}).get(term, 1.0)))
        if not parts_rows:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        rows = np.concatenate(parts_rows)
        unique, inverse = np.unique(rows, return_inverse=True)
        scores = np.zeros(len(unique), dtype=np.float32)
        np.add.at(scores, inverse, np.concatenate(parts_scores))
        return unique, scores

    def scores(self, query: Sequence[str], weights: dict[str, float] | None = None) -> np.ndarray:
        """BM25 of every row (zero where no query term occurs)."""
        out = np.zeros(self.size, dtype=np.float32)
        rows, scores = self.postings(query, weights)
        out[rows] = scores
        return out


class Retriever:
    """Searches one loaded build. Built once per build; safe to share between threads."""

    def __init__(self, data: IndexData, candidates: int = CANDIDATES) -> None:
        self.data = data
        self.candidates = candidates
        # The postings stored with the build; tokenising every passage at load took 8 of the
        # 9.4 s a 10,000-passage index took to open.
        self.bm25 = (BM25.from_arrays(data.lexical) if data.lexical
                     else BM25.build([tokens(p.text) for p in data.passages]))
        names = list(data.documents) or sorted({p.source for p in data.passages})
        self._source_code = {s: i for i, s in enumerate(names)}
        self._passage_source = np.array([self._source_code.get(p.source, -1)
                                         for p in data.passages], dtype=np.int32)

    def search(
        self,
        query_vector: np.ndarray,
        query_terms: Sequence[str],
        top_k: int,
        sources: Collection[str] | None = None,
        mode: str = "hybrid",
        term_weights: dict[str, float] | None = None,
    ) -> list[Hit]:
        """The `top_k` best passages; `mode` "dense" is the plain FAISS baseline."""
        if not self.data.passages:
            return []
        query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        allowed = self._allowed(sources)
        dense_rows = self._dense_candidates(
            query, top_k if mode == "dense" else max(self.candidates, top_k), allowed)
        lexical_rows, lexical_scores = self.bm25.postings(query_terms, term_weights)
        if allowed is not None:
            keep = allowed[lexical_rows]
            lexical_rows, lexical_scores = lexical_rows[keep], lexical_scores[keep]
        if mode == "dense":
            rows = dense_rows
            lexical = _lookup(lexical_rows, lexical_scores, rows)
            dense = self.data.passage_vectors[rows] @ query
            fused = dense.copy()
        else:
            best = float(lexical_scores.max()) if len(lexical_scores) else 0.0
            limit = max(self.candidates, top_k)
            if len(lexical_rows) > limit:
                top = np.argpartition(-lexical_scores, limit - 1)[:limit]
                lexical_top = lexical_rows[top]
            else:
                lexical_top = lexical_rows
            rows = np.union1d(dense_rows, lexical_top)
            lexical = _lookup(lexical_rows, lexical_scores, rows)
            dense = self.data.passage_vectors[rows] @ query
            # Cosine plus BM25 scaled by its best score among the allowed passages. Measured
            # against reciprocal rank fusion with `qa-service eval`: MRR 0.92 vs 0.81 on the
            # dev set, 0.96 vs 0.94 on tests/gold (RRF throws away how far ahead the best is).
            fused = dense + (LEXICAL_WEIGHT * lexical / best if best > 0 else 0.0)
        # Ties go to the earlier passage, as a stable sort over all passages would give.
        order = np.lexsort((rows, -fused))[:top_k]
        return [
            Hit(
                index=int(rows[i]),
                passage=self.data.passages[int(rows[i])],
                score=float(fused[i]),
                dense=float(dense[i]),
                lexical=float(lexical[i]),
                rank=rank,
            )
            for rank, i in enumerate(order, start=1)
        ]

    def _allowed(self, sources: Collection[str] | None) -> np.ndarray | None:
        if sources is None:
            return None
        codes = [self._source_code[s] for s in sources if s in self._source_code]
        return np.isin(self._passage_source, np.asarray(codes, dtype=np.int32))

    def _dense_candidates(self, query: np.ndarray, limit: int,
                          allowed: np.ndarray | None) -> np.ndarray:
        """Rows of the `limit` passages nearest the query (among the allowed ones), ascending."""
        if allowed is not None:
            # A filter: score the allowed passages directly (a FAISS selector scans as many).
            rows = np.flatnonzero(allowed)
            if len(rows) > limit:
                scores = self.data.passage_vectors[rows] @ query
                rows = rows[np.argpartition(-scores, limit - 1)[:limit]]
            return np.sort(rows)
        index = self.data.faiss_index
        # One query is one core's work: OpenMP threads spin against the server's own threads.
        # Measured on this 2-core machine, top 100 of 10,000 vectors: 16 ms with OpenMP's
        # default, 0.5 ms with one. The setting is restored: torch shares the OpenMP runtime.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            _, ids = index.search(query.reshape(1, -1), min(limit, index.ntotal))
        finally:
            faiss.omp_set_num_threads(threads)
        return np.sort(ids[0][ids[0] >= 0])


def _lookup(rows: np.ndarray, scores: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """`scores` of `wanted` rows, zero for rows not in `rows` (both ascending)."""
    out = np.zeros(len(wanted), dtype=np.float32)
    if len(rows):
        at = np.minimum(np.searchsorted(rows, wanted), len(rows) - 1)
        hit = rows[at] == wanted
        out[hit] = scores[at[hit]]
    return out
