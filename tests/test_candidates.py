from __future__ import annotations

from qa_service.answering import spans


def test_every_sentence_once_with_exact_offsets(built_fake):
    prepared = built_fake.prepare("What powers the Alpha glider?")
    texts = {d.source: d.text for d in built_fake.snapshot().data.documents.values()}
    seen = [(c.source, c.start, c.end) for c in prepared.candidates]
    assert len(seen) == len(set(seen))
    for cand in prepared.candidates:
        assert texts[cand.source][cand.start:cand.end] == cand.text
        assert cand.text in cand.hit.passage.text  # cited from a passage that holds the quote


def test_a_sentence_opening_with_a_pronoun_takes_the_one_before(built_fake):
    prepared = built_fake.prepare("How many river ports did it cover?")
    quote = next(c for c in prepared.candidates if "40 river ports" in c.text)
    assert quote.context and quote.text.startswith("The Alpha treaty was signed")


def test_a_sentence_stands_alone_when_it_can(built_fake):
    prepared = built_fake.prepare("What powers the Alpha glider?")
    quote = next(c for c in prepared.candidates if "Zeta-7" in c.text)
    assert not quote.context and quote.text == "The Zeta-7 engine powers the Alpha glider."
    assert prepared.question.kind == spans.OTHER
