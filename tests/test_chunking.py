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
