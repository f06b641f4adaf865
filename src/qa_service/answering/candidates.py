"""Stage 2, candidates: the sentences of the retrieved passages, each with exact offsets.

A sentence that cannot stand alone takes the one before it in the same paragraph: one that opens
with a pronoun ("It included ..."), or one without the asked-for kind of thing when the sentence
before has it (a dated heading just above the fact). The quote stays one exact span of the
document, cited from a passage that holds all of it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from ..chunking import Passage, Span
from ..retrieval import Hit
from ..sources import Document
from . import spans as extract

_LEANS_BACK = re.compile(r"(?:It|Its|This|These|They|Their|He|His|She|Her|That|Those|Such)\b")


class Sentences(Protocol):
    """What candidates need of a loaded index (IndexData provides it)."""

    documents: Mapping[str, Document]

    def sentence_vector(self, passage: int, sentence: int) -> np.ndarray: ...

    def passage_before(self, row: int) -> Passage | None:
        """The passage just before row `row` in the same document, if any."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    hit: Hit  # the passage the quote is cited from
    sentence: int  # index of the (last) sentence within that passage
    start: int  # document offsets of the quote
    end: int
    text: str
    vector: np.ndarray  # of the sentence itself
    context: bool = False  # the quote took in the sentence before

    @property
    def source(self) -> str:
        return self.hit.passage.source


def candidates(
    hits: Sequence[Hit], index: Sentences, wanted: extract.Wanted, numbers: frozenset[str] = frozenset()
) -> list[Candidate]:
    """Every sentence of `hits`, once, in order of passage rank; `numbers` are those the
    question states (a sentence lacking them may take in the one before that has them)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for hit in hits:
        text = index.documents[hit.passage.source].text
        for i, span in enumerate(hit.passage.sentences):
            if (hit.passage.source, span.start) in seen:
                continue
            seen.add((hit.passage.source, span.start))
            cand = Candidate(hit, i, span.start, span.end, text[span.start:span.end],
                             index.sentence_vector(hit.index, i))
            out.append(_with_context(cand, index, wanted, numbers))
    return out


def _with_context(
    cand: Candidate, index: Sentences, wanted: extract.Wanted, numbers: frozenset[str]
) -> Candidate:
    previous, hit, position = _sentence_before(cand, index)
    if previous is None:
        return cand
    text = index.documents[cand.source].text
    if "\n" in text[previous.end:cand.start]:
        return cand  # another paragraph
    needs_context = _LEANS_BACK.match(cand.text) is not None
    gains_kind = wanted.kind in extract.SHORT_KINDS and _precision(wanted, cand.text) < 0.5 <= _precision(
        wanted, text[previous.start:previous.end])
    before = text[previous.start:previous.end]
    gains_numbers = bool(numbers) and any(n not in cand.text and n in before for n in numbers)
    if not (needs_context or gains_kind or gains_numbers) or hit is None:
        return cand
    # The quote is two sentences: its meaning is that of both.
    both = cand.vector + index.sentence_vector(hit.index, position - 1)
    return dataclasses.replace(cand, hit=hit, sentence=position, start=previous.start,
                               text=text[previous.start:cand.end], context=True,
                               vector=both / (np.linalg.norm(both) or 1.0))


def _precision(wanted: extract.Wanted, text: str) -> float:
    """How precisely `text` gives the asked-for kind (0 when it does not)."""
    return max((extract.specificity(s, wanted) for s in extract.spans(wanted.kind, text)), default=0.0)


def _sentence_before(cand: Candidate, index: Sentences) -> tuple[Span | None, Hit | None, int]:
    """The sentence before the candidate's, and the hit (passage) that holds both."""
    if cand.sentence > 0:
        return cand.hit.passage.sentences[cand.sentence - 1], cand.hit, cand.sentence
    earlier = index.passage_before(cand.hit.index)
    if earlier is None:
        return None, None, 0
    row = cand.hit.index - 1
    before = [s for s in earlier.sentences if s.end <= cand.start]
    if not before:
        return None, None, 0
    if cand.end > earlier.end:
        return before[-1], None, 0  # no passage holds both: the sentence stays alone
    position = next((i for i, s in enumerate(earlier.sentences) if s.end == cand.end), None)
    if position is None:
        return before[-1], None, 0
    return before[-1], dataclasses.replace(cand.hit, index=row, passage=earlier), position
