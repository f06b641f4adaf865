"""Retrieval: the inverted-index BM25 against the formula computed directly, and the
candidate-only fused search against an exhaustive fusion over every passage."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from qa_service import answering
from qa_service.retrieval import BM25, LEXICAL_WEIGHT, Retriever

from .conftest import GOLD, SHARED_DEV

DOCS = [["su27sk", "fighter", "china", "china"], ["engin", "al31f"], ["china", "russia", "trade"],
        [], ["fighter"]]


def _reference_bm25(docs, query, weights, k1=1.2, b=0.75):
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    out = []
    for doc in docs:
        tf = Counter(doc)
        total = 0.0
        for term in set(query):
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                norm = k1 * (1 - b + b * len(doc) / avg)
                total += weights.get(term, 1.0) * idf * tf[term] * (k1 + 1) / (tf[term] + norm)
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("query", [["china"], ["fighter", "china", "nowhere"], ["nowhere"], []])
def test_bm25_is_the_formula(query):
    weights = {"china": 0.5}
    bm25 = BM25.build(DOCS)
    assert np.allclose(bm25.scores(query, weights), _reference_bm25(DOCS, query, weights),
                       atol=1e-6)
    rows, scores = bm25.postings(query, weights)
    assert list(rows) == sorted(rows) and len(rows) == len(set(rows))
    assert np.all(scores > 0)
    assert bm25.doc_freq["china"] == 2 and "nowhere" not in bm25.idf


def test_bm25_of_no_passages():
    bm25 = BM25.build([])
    assert bm25.scores(["x"]).shape == (0,)


def _exhaustive(retriever, vector, weights, top_k, sources, mode):
    """The fused ranking over every passage, computed directly."""
    data = retriever.data
    dense = data.passage_vectors @ vector
    lexical = retriever.bm25.scores(list(weights), weights)  # the formula: test above
    allowed = np.array([sources is None or p.source in sources for p in data.passages])
    if mode == "dense":
        fused = dense
    else:
        best = lexical[allowed].max()
        fused = dense + (LEXICAL_WEIGHT * lexical / best if best > 0 else 0.0)
    rows = np.flatnonzero(allowed)
    return [int(r) for r in rows[np.argsort(-fused[rows], kind="stable")][:top_k]]


def _questions():
    out = []
    for path in (SHARED_DEV, GOLD / "paraphrased.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.extend(turn["question"] for turn in row.get("turns", [row]))
    return out


def test_candidate_search_ranks_as_an_exhaustive_fusion(real_service):
    snap = real_service.snapshot()
    # Lists of 20 over the ~100 passages of the sources, so they do leave passages out.
    retriever = Retriever(snap.data, candidates=20)
    assert len(snap.data.passages) > 4 * retriever.candidates
    names = list(snap.data.documents)
    for i, question in enumerate(_questions()):
        analysed = answering.analyse(question, [], snap.corpus)
        vector = real_service.embedder.embed_query(analysed.search_text)
        for mode in ("hybrid", "dense"):
            for sources in (None, {names[i % len(names)]}):
                hits = retriever.search(vector, list(analysed.weights), 5, sources, mode=mode,
                                        term_weights=analysed.weights)
                expected = _exhaustive(retriever, vector, analysed.weights, 5, sources, mode)
                assert [h.index for h in hits] == expected, (question, mode, sources)
                assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
                assert all(sources is None or h.passage.source in sources for h in hits)


def test_a_filter_to_an_unknown_source_finds_nothing(real_service):
    snap = real_service.snapshot()
    vector = real_service.embedder.embed_query("fighters")
    assert snap.retriever.search(vector, ["fighter"], 5, {"nowhere.txt"}) == []


def test_bm25_survives_its_arrays():
    bm25 = BM25.build(DOCS)
    again = BM25.from_arrays({k: np.asarray(v) for k, v in bm25.to_arrays().items()})
    for query in (["china"], ["fighter", "engin"], ["nowhere"]):
        assert np.array_equal(again.scores(query), bm25.scores(query))
    assert again.doc_freq == bm25.doc_freq and again.idf == bm25.idf


def test_the_loaded_index_reads_its_stored_postings(built_fake):
    snap = built_fake.snapshot()
    assert set(snap.data.lexical) == {"rows", "weights", "offsets", "terms", "params"}
    from qa_service.text import tokens

    fresh = BM25.build([tokens(p.text) for p in snap.data.passages])
    assert snap.retriever.bm25.doc_freq == fresh.doc_freq
    assert np.allclose(snap.retriever.bm25.scores(["alpha", "treati"]),
                       fresh.scores(["alpha", "treati"]))
