"""Retrieval: the candidate-only fused search against an exhaustive fusion over every passage,
on one segment and on several with dead rows. (BM25 itself: test_lexical.py.)"""

from __future__ import annotations

import json

import numpy as np

from qa_service import answering
from qa_service.embedding import HashingEmbedder
from qa_service.retrieval import LEXICAL_WEIGHT, Retriever
from qa_service.service import QAService

from .conftest import GOLD, SHARED_DEV


def _exhaustive(retriever, vector, weights, top_k, sources, mode):
    """The fused ranking over every passage, computed directly."""
    data = retriever.data
    everything = np.arange(len(data.passages))
    dense = data.vectors(everything) @ vector
    lexical = data.lexical.scores(weights, everything)  # the formula: test_lexical.py
    alive = np.concatenate([np.ones(s.size, bool) if a is None else a
                            for s, a in zip(data.segments, data.alive)])
    allowed = alive & np.array([sources is None or p.source in sources for p in data.passages])
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


def test_several_segments_with_dead_rows_rank_as_an_exhaustive_fusion(fake_settings):
    """Three builds (an added source, an edited one) leave three segments, one row dead."""
    service = QAService(fake_settings, embedder=HashingEmbedder())
    service.build()
    folder = fake_settings.sources_dir
    (folder / "gamma.txt").write_text(
        "The Gamma harbour was dredged in 1999. Its cranes came from the Alpha works.\n",
        encoding="utf-8")
    service.build()
    with (folder / "alpha.txt").open("a", encoding="utf-8") as handle:
        handle.write("\nA later note: the Alpha treaty was renewed in 2011 for ten years.\n")
    service.build()
    data = service.snapshot().data
    assert len(data.segments) == 3 and any(a is not None for a in data.alive)
    retriever = Retriever(data, candidates=2)
    embedder = service.embedder
    for question in ("When was the Alpha treaty signed?", "Who dredged the Gamma harbour?",
                     "What does the Beta canal cost?", "Alpha renewed"):
        analysed = answering.analyse(question, [], service.snapshot().corpus)
        vector = embedder.embed_query(analysed.search_text)
        for sources in (None, {"alpha.txt"}):
            hits = retriever.search(vector, list(analysed.weights), 3, sources,
                                    term_weights=analysed.weights)
            expected = _exhaustive(retriever, vector, analysed.weights, 3, sources, "hybrid")
            assert [h.index for h in hits] == expected, (question, sources)
    texts = " ".join(h.passage.text for h in retriever.search(
        embedder.embed_query("Alpha treaty"), ["alpha", "treati"], 10))
    assert "renewed in 2011" in texts and texts.count("signed on March 3, 2001") == 1
