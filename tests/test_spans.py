from __future__ import annotations

import pytest

from qa_service.answering import spans as extract
from qa_service.text import tokens


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("When did the talks begin?", extract.DATE),
        ("In what year was the plant opened?", extract.DATE),
        ("During which period did the embargo last?", extract.DATE),
        ("How many tanks were delivered?", extract.NUMBER),
        ("What share of the exports went to China?", extract.NUMBER),
        ("How big was the exercise?", extract.NUMBER),
        ("How much did the deal cost?", extract.MONEY),
        ("What was the value of the contract?", extract.MONEY),
        ("Who signed the memorandum?", extract.PERSON),
        ("Where is the factory?", extract.PLACE),
        ("In which city were the jets assembled?", extract.PLACE),
        ("Which engine powers the new trainer?", extract.DESIGNATION),
        ("Which air-launched missiles were tested?", extract.DESIGNATION),
        ("Which regional organization was founded?", extract.NAME),
        ("What was the name of the drill?", extract.NAME),
        ("What was the first joint military exercise?", extract.NAME),
        ("Why did the talks stall?", extract.REASON),
        ("How did the talks go?", extract.OTHER),
        ("Who is Xi Jinping?", extract.OTHER),
        ("Who was the defense minister then?", extract.PERSON),
    ],
)
def test_question_kind(question, kind):
    assert extract.question_kind(question) == kind


@pytest.mark.parametrize(
    ("kind", "sentence", "expected"),
    [
        (extract.DATE, "Signed on November 24, 1992 and in May 1990.", ["November 24, 1992", "May 1990"]),
        (extract.DATE, "In 1951-1960, help came.", ["1951-1960"]),
        (extract.MONEY, "a volume of $2.2–2.5 billion, and well under $2 trillion",
         ["$2.2–2.5 billion", "well under $2 trillion"]),
        (extract.NUMBER, "another four exercises and 100-plus aircraft with 30-mm guns",
         ["four", "100-plus"]),
        (extract.DESIGNATION, "J-10 (AL-31FN), FC-1 (RD-93), 117S engines, Project 956 ships",
         ["J-10", "AL-31FN", "FC-1", "RD-93", "117S", "Project 956"]),
        (extract.PERSON, "According to Russian Vice Prime Minister Dmitry Rogozin, exports grew.",
         ["Dmitry Rogozin"]),
    ],
)
def test_spans(kind, sentence, expected):
    found = extract.spans(kind, sentence)
    assert [s.text for s in found] == expected
    assert all(sentence[s.start:s.end] == s.text for s in found)


def test_refines_and_specificity():
    assert extract.refines("October 2, 1949", "October 1949")
    assert not extract.refines("October 1949", "October 2, 1949")
    day = extract.Span(extract.DATE, 0, 15, "October 2, 1949")
    year = extract.Span(extract.DATE, 0, 4, "1949")
    assert extract.specificity(day) > extract.specificity(year)


def test_tokens_keep_designations_and_numbers_whole():
    assert tokens("Su-27SK, S-300 and AL-31F/FN for $13 billion; 10,000 troops; 1992-2004") == [
        "su27sk", "s300", "al31f", "fn", "13", "billion", "10000", "troop", "1992", "2004"]
