from __future__ import annotations

import numpy as np

from qa_service.answering import Features, Scorer, respond
from qa_service.answering.compose import decide, short_answer
from qa_service.answering.scorer import CONFIDENCE_INPUTS, Logistic
from qa_service.evaluation import citation_problems


def _scorer(threshold: float, confidence_bias: float = 0.0, typed: float = 2.0) -> Scorer:
    """Ranks by coverage and typed value; confidence is the best ranker logit plus a bias."""
    names = Features.names()
    weights = np.array([{"coverage": 4.0, "typed": typed}.get(n, 0.0) for n in names])
    ranker = Logistic(names, np.zeros(len(names)), np.ones(len(names)), weights, -2.0)
    conf_w = np.array([1.0 if n == "ranker" else 0.0 for n in CONFIDENCE_INPUTS])
    confidence = Logistic(CONFIDENCE_INPUTS, np.zeros(len(conf_w)), np.ones(len(conf_w)), conf_w,
                          confidence_bias)
    return Scorer(ranker, confidence, threshold, {})


def _respond(service, question, scorer, history=()):
    snap = service.snapshot()
    prepared = service.prepare(question, list(history))
    return prepared, respond(prepared, scorer, snap.corpus, snap.data.documents)


def _texts(service):
    return {d.source: d.text for d in service.snapshot().data.documents.values()}


def test_an_answer_quotes_exactly_with_markers_and_a_short_answer(built_fake):
    _, answer = _respond(built_fake, "When was the Alpha treaty signed?", _scorer(0.1))
    result = answer.to_dict()
    assert result["answerable"] and result["short_answer"] == "March 3, 2001"
    assert result["answer"].startswith("The Alpha treaty was signed on March 3, 2001 [1].")
    assert citation_problems(result, _texts(built_fake)) == []


def test_below_the_threshold_the_answer_is_a_refusal_with_the_nearest_passages(built_fake):
    _, answer = _respond(built_fake, "When was the Alpha treaty signed?", _scorer(0.999))
    result = answer.to_dict()
    assert not result["answerable"] and result["short_answer"] is None
    assert result["answer"].startswith("The sources do not say")
    assert 1 <= len(result["citations"]) <= 3 and "[1]" not in result["answer"]
    assert citation_problems(result, _texts(built_fake)) == []


def test_a_refusal_names_what_the_sources_never_mention(built_fake):
    _, answer = _respond(built_fake, "How many Rafale jets did Qatar order?", _scorer(0.999))
    assert "never mention" in answer.answer and "“Rafale”" in answer.answer


def test_a_refusal_says_when_no_number_is_given(built_fake):
    _, answer = _respond(built_fake, "How many pilots flew the Alpha glider?", _scorer(0.999, typed=0.0))
    assert answer.answer.startswith("The sources do not say how many")


def test_decision_orders_candidates_and_keeps_confidence_in_range(built_fake):
    prepared = built_fake.prepare("How much do boats pay in tolls on the Beta canal?")
    snap = built_fake.snapshot()
    decision = decide(prepared.question, prepared.candidates, prepared.features, _scorer(0.5), snap.corpus)
    best = prepared.candidates[decision.order[0]]
    assert "$4 million" in best.text and decision.short == "$4 million"
    assert 0.0 <= decision.confidence <= 1.0 and decision.chosen[0] == decision.order[0]


def test_short_answer_of_a_who_wrote_question_is_the_metadata_author_in_the_text(tmp_path):
    from qa_service.config import Settings
    from qa_service.embedding import HashingEmbedder
    from qa_service.service import QAService

    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "kestrel.txt").write_text(
        "---\ntitle: Kestrel Radar Notes\nauthor: Jane Roe\n---\n"
        "Kestrel Radar Notes, by Jane Roe. The Kestrel-9 radar was tested in April 2023.\n",
        encoding="utf-8")
    service = QAService(Settings(sources_dir=sources, index_dir=tmp_path / "index"), HashingEmbedder())
    service.build()
    prepared = service.prepare("Who wrote the Kestrel radar notes?")
    assert prepared.question.metadata_answer == "Jane Roe"
    snap = service.snapshot()
    assert short_answer(prepared.question, prepared.candidates, snap.corpus) == "Jane Roe"


def test_a_sources_own_footnote_marks_never_become_markers(tmp_path):
    import re

    from qa_service.config import Settings
    from qa_service.embedding import HashingEmbedder
    from qa_service.service import QAService

    folder = tmp_path / "sources"
    folder.mkdir()
    (folder / "notes.txt").write_text(
        "The Alpha treaty was signed on March 3, 2001.[7] It covered 40 river ports [ 12 ].\n\n"
        "The Beta canal opened in 1987 [3, 4]. Boats pay $4 million a year [5–9][10].\n",
        encoding="utf-8")
    service = QAService(Settings(sources_dir=folder, index_dir=tmp_path / "index"),
                        embedder=HashingEmbedder())
    service.build()
    texts = _texts(service)
    for question in ("When was the Alpha treaty signed?", "How many river ports did it cover?",
                     "When did the Beta canal open?", "How much do boats pay a year?"):
        result = _respond(service, question, _scorer(0.1))[1].to_dict()
        assert result["answerable"], question
        markers = re.findall(r"\[([^\]]*)\]", result["answer"])
        assert markers == [str(c["n"]) for c in result["citations"]], result["answer"]
        assert citation_problems(result, texts) == []
