from __future__ import annotations

import pytest

from qa_service.chunking import make_passages, split_sentences
from qa_service.sources import load_documents

from .conftest import SOURCES


def test_every_passage_and_sentence_is_its_source_text_at_its_offsets():
    docs, _ = load_documents(SOURCES)
    assert len(docs) >= 3
    for doc in docs:
        passages = make_passages(doc.source, doc.text)
        assert passages
        for p in passages:
            assert doc.text[p.start:p.end] == p.text
            assert p.sentences[0].start == p.start and p.sentences[-1].end == p.end
            for s in p.sentences:
                assert p.start <= s.start < s.end <= p.end
                assert doc.text[s.start:s.end] == doc.text[s.start:s.end].strip()
        # Together the passages cover every sentence of the document.
        covered = {(s.start, s.end) for p in passages for s in p.sentences}
        assert covered == {(s.start, s.end) for s in split_sentences(doc.text)}


def test_passages_overlap_by_one_sentence_and_respect_limits():
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    passages = make_passages("s.txt", text, max_sentences=4, max_chars=700, overlap=1)
    for a, b in zip(passages, passages[1:]):
        assert a.sentences[-1] == b.sentences[0]
    assert all(len(p.sentences) <= 4 for p in passages)
    assert len({p.chunk_id for p in passages}) == len(passages)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The U.S. and Mr. Smith met. Then they left.",
         ["The U.S. and Mr. Smith met.", "Then they left."]),
        ("Prices rose to $2.5 billion. Sales fell.", ["Prices rose to $2.5 billion.", "Sales fell."]),
        ("He said “it is close.” Then he left.", ["He said “it is close.”", "Then he left."]),
        # A dated heading stays with the sentence it dates.
        ("May 15, 1991. Jiang Zemin Visits Moscow. The two sides sign an agreement on borders.",
         ["May 15, 1991. Jiang Zemin Visits Moscow. The two sides sign an agreement on borders."]),
        ("First paragraph ends here.\n\nSecond one here.",
         ["First paragraph ends here.", "Second one here."]),
    ],
)
def test_sentence_splitting(text, expected):
    assert [text[s.start:s.end] for s in split_sentences(text)] == expected


def test_a_five_megabyte_paragraph_is_split_in_one_pass():
    # Quadratic before: a 5.3 MB paragraph took 32 s; this finishes in about a second.
    sentence = "The Alpha treaty was signed on March 3, 2001 by both sides. "
    text = sentence * 90_000
    spans = split_sentences(text)
    assert len(spans) == 90_000
    assert all(text[s.start:s.end] == sentence.strip() for s in spans[:: 997])


def test_a_long_run_without_punctuation_is_cut_at_word_boundaries():
    from qa_service.chunking import MAX_SENTENCE_CHARS

    text = " ".join(f"word{i}" for i in range(300_000))  # a 3 MB line, no sentence end
    passages = make_passages("x.txt", text)
    assert max(p.end - p.start for p in passages) <= MAX_SENTENCE_CHARS
    words = set(text.split())
    for p in passages:
        assert text[p.start:p.end] == p.text
        for s in p.sentences:
            piece = text[s.start:s.end]
            assert piece.split()[0] in words and piece.split()[-1] in words  # no word cut


@pytest.mark.parametrize("run", ["x" * 2_000_000, "." * 2_000_000 + "x"])
def test_a_run_without_any_space_is_cut_hard_and_exactly(run):
    from qa_service.chunking import MAX_SENTENCE_CHARS

    text = "A start of it all here. " + run + " end."
    spans = split_sentences(text)
    assert max(s.end - s.start for s in spans) <= MAX_SENTENCE_CHARS
    # Nothing lost, nothing invented: the pieces and the white space between them are the text.
    assert spans[0].start == 0 and spans[-1].end == len(text)
    assert all(not text[a.end:b.start].strip() for a, b in zip(spans, spans[1:]))
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
