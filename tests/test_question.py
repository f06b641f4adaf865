from __future__ import annotations

import pytest

from qa_service.answering import spans
from qa_service.answering.aliases import corpus_acronyms
from qa_service.answering.corpus import CorpusStats
from qa_service.answering.question import analyse, numbers_in, spell_numbers


@pytest.fixture
def corpus() -> CorpusStats:
    return CorpusStats(
        {"china": 9, "russia": 9, "engin": 3, "contract": 4, "sign": 2, "kestrel": 1, "radar": 1},
        10,
        corpus_acronyms(["The Kestrel-9 radar.", "Engines and contracts."]),
        {"notes.txt": {"title": "Kestrel Notes", "author": "Jane Roe", "publisher": "Aero Press"},
         "paper.txt": {"title": "Engine Contracts Reviewed", "author": "Ivan Petrov"}},
    )


@pytest.mark.parametrize(
    ("question", "kind"),
    [("When was the contract signed?", spans.DATE), ("How many engines did Beijing buy?", spans.NUMBER),
     ("How much was it worth?", spans.MONEY), ("Which leader signed it?", spans.PERSON),
     ("Which country bought the radar?", spans.PLACE), ("Why was it cancelled?", spans.REASON),
     ("On what day did the talks end?", spans.DATE), ("How long did the talks last?", spans.NUMBER)],
)
def test_kind(corpus, question, kind):
    assert analyse(question, [], corpus).kind == kind


def test_spelled_out_numbers_are_read_as_numbers():
    assert spell_numbers("one hundred and forty engines") == "140 engines"
    assert numbers_in("10,000 troops and 2.5 billion") == {"10000", "2.5"}


def test_question_numbers_and_names(corpus):
    q = analyse("Did Beijing order twenty-four Kestrel-9 radars in 2015?", [], corpus)
    assert q.numbers == {"24", "9", "2015"}
    assert "kestrel9" in q.names and "beij" in q.names
    assert q.weights["china"] < 1.0  # another name for Beijing, weighed less than the question's own


def test_a_source_named_by_its_author_or_publisher(corpus):
    q = analyse("According to Petrov's paper, how many engines were ordered?", [], corpus)
    assert q.sources == ("paper.txt",) and q.reference_terms == {"petrov"}
    assert q.weights["petrov"] < 1.0  # names the source, not what is asked


def test_who_wrote_a_source_is_answered_from_its_metadata(corpus):
    q = analyse("Who wrote the Kestrel notes?", [], corpus)
    assert q.metadata_answer == "Jane Roe" and q.kind == spans.PERSON


def test_the_author_of_a_source_is_asked_about_by_name(corpus):
    q = analyse("Where does the author of the engine contracts paper work?", [], corpus)
    assert q.metadata_answer is None
    assert "Ivan Petrov" in q.search_text and q.weights["petrov"] == 1.0


def test_the_paper_is_the_one_source_searched(corpus):
    q = analyse("Who wrote the paper?", [], corpus, scope=["paper.txt"])
    assert q.sources == ("paper.txt",) and q.metadata_answer == "Ivan Petrov"
    assert analyse("Who wrote the paper?", [], corpus).metadata_answer is None
    assert analyse("Who wrote the paper?", [], corpus, ["paper.txt", "notes.txt"]).sources == ()
    assert analyse("Who signed the contract?", [], corpus, ["paper.txt"]).sources == ()


def test_no_source_is_named_by_a_plain_question(corpus):
    assert analyse("How many engines were ordered?", [], corpus).sources == ()


def test_a_follow_up_takes_in_the_earlier_turn(corpus):
    history = [{"question": "Who signed the Kestrel contract?", "answer": "Ivan Petrov signed it [1]."}]
    q = analyse("Where does he work?", history, corpus)
    assert q.followup and "Kestrel" in q.search_text
    assert q.weights["kestrel"] < 1.0 and q.weights["petrov"] > q.weights["kestrel"]
    assert q.previous_answer == "ivanpetrovsignedit"
    assert not analyse("Where is the Kestrel radar built?", history, corpus).followup
