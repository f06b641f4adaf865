from __future__ import annotations

from qa_service.answering.aliases import corpus_acronyms
from qa_service.answering.corpus import CorpusStats


def _corpus() -> CorpusStats:
    return CorpusStats(
        {"engine": 3, "glider": 1, "china": 4},
        8,
        corpus_acronyms(["The Northwind Works (NW) engine."]),
        {"a.txt": {"title": "Glider Engines Today", "author": "Jane Roe", "publisher": "Aero Press"}},
    )


def test_rare_terms_weigh_more_and_unknown_terms_most():
    corpus = _corpus()
    assert corpus.idf("glider") > corpus.idf("engine") > 0
    assert corpus.idf("zeppelin") > corpus.idf("glider")


def test_common_terms_are_those_in_a_quarter_of_passages():
    assert _corpus().common == {"engine", "china"}


def test_known_counts_other_names():
    corpus = _corpus()
    assert corpus.known("glider") and not corpus.known("zeppelin")
    assert corpus.known("beij")  # Beijing, through China


def test_sources_carry_what_a_question_may_call_them():
    info = _corpus().sources[0]
    assert info.by_terms == {"jane", "roe", "aero", "press"}
    assert {"glider", "today"} <= info.title_terms


def test_words_of_a_source_s_metadata_are_known():
    corpus = _corpus()
    assert corpus.known("aero") and corpus.known("roe")
