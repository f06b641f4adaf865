"""Answering: retrieved passages → an answer made of source sentences, each cited exactly.

A staged pipeline, one module per stage, each with typed input and output:

    question.analyse   → Question      what is asked, about what, from which source
    candidates         → [Candidate]   sentences of the retrieved passages, exact offsets
    features           → [Features]    named measurements per candidate
    scorer.Scorer      → logits, confidence   fitted weights (model.json), calibrated
    compose.decide     → Decision      sentences chosen, short answer (spans), answer or refuse
    compose.answer     → Answer        text with [n] markers and citations, or a refusal

`prepare` runs the stages up to the features, which do not depend on fitted weights, so
training and cross-validation compute them once and score them under many models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..retrieval import Hit
from . import spans
from .candidates import Candidate, Sentences, candidates
from .compose import Answer, Citation, Decision, answer, decide
from .corpus import COMMON_SHARE, CorpusStats
from .features import Features, features
from .question import Question, analyse
from .scorer import Scorer

__all__ = [
    "COMMON_SHARE", "Answer", "Candidate", "Citation", "CorpusStats", "Decision", "Features",
    "Prepared", "Question", "Scorer", "analyse", "passage_baseline", "prepare", "respond", "spans",
]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A question with its candidates and their features: everything before the weights."""

    question: Question
    candidates: list[Candidate]
    features: list[Features]


def prepare(
    question: Question,
    hits: Sequence[Hit],
    index: Sentences,
    corpus: CorpusStats,
    query_vector: np.ndarray,
    own_vector: np.ndarray | None = None,
) -> Prepared:
    cands = candidates(hits, index, question.wanted, question.numbers)
    return Prepared(question, cands, features(question, cands, corpus, query_vector, own_vector))


def respond(prepared: Prepared, scorer: Scorer, corpus: CorpusStats, documents: dict) -> Answer:
    """Score the prepared candidates and write the answer or the refusal."""
    decision = decide(prepared.question, prepared.candidates, prepared.features, scorer, corpus)
    return answer(prepared.question, prepared.candidates, prepared.features, decision, corpus, documents)


def passage_baseline(question: Question, hits: Sequence[Hit], documents: dict) -> Answer:
    """The usual FAISS-only setup, for comparison: the top passage is the answer, always."""
    if not hits:
        return Answer(question.text, "The sources do not say.", None, False, 0.0, ())
    top = hits[0]
    doc = documents[top.passage.source]
    citation = Citation(1, doc.source, doc.title, top.passage.chunk_id, top.passage.text,
                        top.passage.text, top.passage.start, top.passage.end, round(top.dense, 4),
                        doc.page_at(top.passage.start))
    return Answer(question.text, f"{top.passage.text} [1]", None, True,
                  max(0.0, min(1.0, top.dense)), (citation,))
