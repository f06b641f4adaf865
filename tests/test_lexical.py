"""The lexical index: BM25 against the formula computed directly, pruned top lists against
exhaustive ones, and segments with dead rows against one index of the live rows."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from qa_service.lexical import LexicalIndex, Postings, Terms

DOCS = [["su27sk", "fighter", "china", "china"], ["engin", "al31f"], ["china", "russia", "trade"],
        [], ["fighter"]]


def _reference_bm25(docs, weights, k1=1.2, b=0.75):
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    out = []
    for doc in docs:
        tf = Counter(doc)
        total = 0.0
        for term, weight in weights.items():
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                norm = k1 * (1 - b + b * len(doc) / avg)
                total += weight * idf * tf[term] * (k1 + 1) / (tf[term] + norm)
        out.append(total)
    return np.array(out)


def _index(docs):
    return LexicalIndex([Postings.build(docs)], [None])


@pytest.mark.parametrize("weights", [{"china": 1.0}, {"fighter": 1.0, "china": 0.5, "nowhere": 1.0},
                                     {"nowhere": 1.0}, {}])
def test_bm25_is_the_formula(weights):
    index = _index(DOCS)
    assert np.allclose(index.scores(weights, np.arange(len(DOCS))),
                       _reference_bm25(DOCS, weights), atol=1e-6)
    assert index.doc_freq("china") == 2 and index.doc_freq("nowhere") == 0
    assert "china" in index.doc_freqs() and "nowhere" not in index.doc_freqs()


def test_a_question_of_unknown_terms_finds_nothing():
    rows, scores = _index(DOCS).top({"nowhere": 1.0, "zeppelin": 0.5}, 5)
    assert len(rows) == len(scores) == 0


def test_an_empty_index_scores_nothing():
    index = _index([])
    assert index.scores({"x": 1.0}, np.arange(0)).shape == (0,)
    rows, scores = index.top({"x": 1.0}, 5)
    assert len(rows) == len(scores) == 0


def _corpus(seed, n=400):
    """Passages over a Zipf-like vocabulary: a few terms in most passages, many rare ones."""
    rng = random.Random(seed)
    vocabulary = [f"t{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(len(vocabulary))]
    return [rng.choices(vocabulary, weights, k=rng.randint(0, 30)) for _ in range(n)]


def _exhaustive_top(index, weights, limit, allowed=None):
    scores = index.scores(weights, np.arange(index.offsets[-1]))
    if allowed is not None:
        scores = np.where(allowed, scores, 0)
    rows = np.flatnonzero(scores > 0)
    return np.sort(scores[rows])[::-1][:limit]


@pytest.mark.parametrize("seed", range(5))
def test_the_pruned_top_list_is_the_exhaustive_one(seed):
    docs = _corpus(seed)
    index = _index(docs)
    rng = random.Random(seed)
    for _ in range(40):
        # Common terms ("t0" is in most passages) with rare ones, weighted as questions are.
        terms = {f"t{rng.choice([0, 1, 2, rng.randint(3, 299)])}": rng.choice([1.0, 0.3])
                 for _ in range(rng.randint(1, 6))}
        limit = rng.choice([1, 5, 20])
        allowed = None if rng.random() < 0.5 else np.array([rng.random() < 0.3 for _ in docs])
        rows, scores = index.top(terms, limit, allowed)
        assert list(rows) == sorted(rows)
        assert np.allclose(np.sort(scores)[::-1], _exhaustive_top(index, terms, limit, allowed),
                           atol=1e-5)
        assert np.allclose(scores, index.scores(terms, rows), atol=1e-5)
        assert allowed is None or allowed[rows].all()


def _split(docs, cuts, dead):
    """`docs` cut into segments at `cuts`, the rows in `dead` masked."""
    bounds = [0, *cuts, len(docs)]
    segments, alive = [], []
    for lo, hi in zip(bounds, bounds[1:]):
        segments.append(Postings.build(docs[lo:hi]))
        mask = np.array([r not in dead for r in range(lo, hi)], dtype=bool)
        alive.append(None if mask.all() else mask)
    return LexicalIndex(segments, alive)


def test_segments_with_dead_rows_score_as_one_index_of_the_live_rows():
    docs = _corpus(11, n=300)
    dead = set(random.Random(3).sample(range(len(docs)), 60))
    split = _split(docs, [100, 220], dead)
    live = [r for r in range(len(docs)) if r not in dead]
    whole = _index([docs[r] for r in live])
    assert split.size == whole.size and split.avg_length == pytest.approx(whole.avg_length)
    for terms in ({"t0": 1.0}, {"t0": 1.0, "t7": 1.0, "t150": 0.3}, {"t299": 1.0, "t1": 1.0}):
        assert split.doc_freq(next(iter(terms))) == whole.doc_freq(next(iter(terms)))
        assert np.allclose(split.scores(terms, np.array(live)),
                           whole.scores(terms, np.arange(len(live))), atol=1e-6)
        rows, scores = split.top(terms, 10)
        assert not set(rows.tolist()) & dead
        assert np.allclose(np.sort(scores), np.sort(whole.top(terms, 10)[1]), atol=1e-5)
    assert split.common_terms(0.25) == whole.common_terms(0.25)


def test_merged_postings_are_those_built_from_the_kept_rows():
    docs = _corpus(5, n=120)
    first, second = Postings.build(docs[:70]), Postings.build(docs[70:])
    keep = [r for r in range(120) if r % 7]
    renumber = np.full(120, -1)
    renumber[keep] = np.arange(len(keep))
    merged = Postings.merge([(first, renumber[:70]), (second, renumber[70:])])
    built = Postings.build([docs[r] for r in keep])
    assert list(merged.terms) == list(built.terms)
    for name in ("ptr", "rows", "tf", "lengths", "maxtf", "minlen"):
        assert np.array_equal(getattr(merged, name), getattr(built, name)), name


def test_postings_survive_saving_and_opening(tmp_path):
    built = Postings.build(_corpus(2, n=50) + [["ünïcode", "s-400"]])
    built.save(tmp_path)
    opened = Postings.open(tmp_path)
    assert list(opened.terms) == list(built.terms)
    assert opened.terms.index("s-400") >= 0 and opened.terms.index("absent") == -1
    terms = {"t0": 1.0, "ünïcode": 1.0}
    assert np.array_equal(LexicalIndex([opened], [None]).scores(terms, np.arange(51)),
                          LexicalIndex([built], [None]).scores(terms, np.arange(51)))


def test_terms_find_by_binary_search():
    blob, ends = Terms.encode(["alpha", "beta", "gamma"])
    terms = Terms(blob, ends)
    assert [terms.index(t) for t in ("alpha", "beta", "gamma", "delta", "")] == [0, 1, 2, -1, -1]
    assert terms[1:] == ["beta", "gamma"]


def test_past_the_budget_the_list_ranks_the_rows_of_the_rarest_terms_by_exact_scores():
    docs = _corpus(7, n=600)
    index = _index(docs)
    # "t250" is rare, "t0" and "t1" are in most passages: the budget covers the rare term only.
    terms = {"t250": 1.0, "t0": 1.0, "t1": 1.0}
    rare = index.doc_freq("t250")
    assert 0 < rare < 50 and index.doc_freq("t0") > 300
    rows, scores = index.top(terms, 5, budget=rare + 1)
    assert np.allclose(scores, index.scores(terms, rows))  # exact scores of what it returns
    assert all("t250" in docs[r] for r in rows)  # rows of the term read
    exact_rows, exact_scores = index.top(terms, 5, budget=None)
    # The rare term's weight dominates: the best rows are the same.
    assert np.allclose(np.sort(scores), np.sort(exact_scores))
