"""Stage 6, composition: the answer (sentences with `[n]` markers, a short answer, citations) or
an honest refusal that says what the sources lack and lists the nearest passages to check."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..text import normalise, token_set, tokens
from . import spans
from .candidates import Candidate
from .corpus import CorpusStats
from .features import Features, present
from .question import Question
from .scorer import Scorer

MAX_ANSWER_SENTENCES = 3
MAX_ANSWER_CHARS = 700
# A runner-up joins the best sentence when its ranker probability is at least this share of the
# best one's and it adds something (the question's terms the first lacks, or a more precise
# statement of the short answer from another source). Measured held out (make cv, 2026-11-22):
# 1.01 (never) accuracy 0.799 with one sentence always; 0.6: 0.808, 94 % one sentence; 0.3:
# 0.819, 87 % one sentence (1.14 sentences an answer). A second sentence the reader can check
# is worth more than a missed answer.
RUNNER_UP_SHARE = 0.3
NEAREST_ON_REFUSAL = 3
_CRISP_WORDS = {spans.DATE: ("when", "date"), spans.NUMBER: ("how many", "number"),
                spans.MONEY: ("how much", "amount")}


@dataclasses.dataclass(frozen=True)
class Citation:
    n: int
    source: str
    title: str
    chunk_id: str
    passage: str
    quote: str
    start: int
    end: int
    score: float
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.page is None:
            del data["page"]
        return data


@dataclasses.dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    short_answer: str | None
    answerable: bool
    confidence: float
    citations: tuple[Citation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "short_answer": self.short_answer,
            "answerable": self.answerable,
            "confidence": round(self.confidence, 3),
            "citations": [c.to_dict() for c in self.citations],
        }


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the scorer made of one question's candidates, before any text is written."""

    order: list[int]  # candidate indices, best first
    probabilities: np.ndarray  # ranker probability per candidate
    chosen: list[int]
    short: str | None
    confidence: float
    answerable: bool


def decide(
    question: Question,
    cands: Sequence[Candidate],
    feats: Sequence[Features],
    scorer: Scorer,
    corpus: CorpusStats,
) -> Decision:
    """Rank, choose the answer's sentences, find the short answer and judge confidence."""
    if not cands:
        return Decision([], np.zeros(0), [], None, 0.0, False)
    logits = scorer.rank(feats)
    # The ranker scores candidates against each other: each one's share of them all.
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = sorted(range(len(cands)), key=lambda i: -logits[i])
    chosen = _choose(question, cands, order, probabilities)
    short = short_answer(question, [cands[i] for i in chosen], corpus)
    short_missing = question.kind in spans.SHORT_KINDS and short is None
    confidence = scorer.confidence_of(float(logits[order[0]]), rival_logits(cands, order, logits),
                                      feats[order[0]], short_missing, question.kind, question.followup)
    return Decision(order, probabilities, chosen, short, confidence, confidence >= scorer.threshold)


def rival_logits(cands: Sequence[Candidate], order: list[int], logits: np.ndarray) -> list[float]:
    """Logits of the candidates that quote other text than the best one."""
    best = cands[order[0]]
    return [float(logits[i]) for i in order[1:]
            if not (cands[i].source == best.source and cands[i].start < best.end
                    and best.start < cands[i].end)]


def _choose(
    question: Question, cands: Sequence[Candidate], order: list[int], probabilities: np.ndarray
) -> list[int]:
    first = order[0]
    chosen = [first]
    covered = set(token_set(cands[first].text))
    first_span = _span(question, cands[first])
    for i in order[1:]:
        if len(chosen) == MAX_ANSWER_SENTENCES or probabilities[i] < RUNNER_UP_SHARE * probabilities[first]:
            break
        cand = cands[i]
        if any(cands[c].source == cand.source and cands[c].start < cand.end and cand.start < cands[c].end
               for c in chosen):
            continue  # overlaps a sentence already chosen
        said = normalise(cand.text)
        if any(said in normalise(cands[c].text) or normalise(cands[c].text) in said for c in chosen):
            continue  # the same words again
        if sum(len(cands[c].text) for c in chosen) + len(cand.text) > MAX_ANSWER_CHARS:
            continue
        new_terms = {t for t in token_set(cand.text) if t in question.weights} - covered
        span = _span(question, cand)
        sharper = (first_span is not None and span is not None and cand.source != cands[first].source
                   and spans.refines(span.text, first_span.text))
        if new_terms or sharper:
            chosen.append(i)
            covered |= token_set(cand.text)
    return chosen


def _span(question: Question, cand: Candidate) -> spans.Span | None:
    if question.kind not in spans.SHORT_KINDS:
        return None
    return spans.best_span(question.wanted, cand.text, question.text,
                           {t: 1.0 for t in question.content}, tokens)


def short_answer(question: Question, chosen: Sequence[Candidate], corpus: CorpusStats) -> str | None:
    """The exact span that answers a date / number / amount / name / place / designation
    question: from the first sentence, or a more precise statement of it from another."""
    if question.metadata_answer:
        for cand in chosen:
            at = cand.text.lower().find(question.metadata_answer.lower())
            if at >= 0:
                return cand.text[at:at + len(question.metadata_answer)]
    if question.kind not in spans.SHORT_KINDS:
        return None
    anchors = {t: w * corpus.idf(t) for t, w in question.weights.items()}
    short = None
    for cand in chosen:
        found = spans.best_span(question.wanted, cand.text, question.text, anchors, tokens)
        if found is not None and (short is None or spans.refines(found.text, short)):
            short = found.text
    return short


def answer(
    question: Question,
    cands: Sequence[Candidate],
    feats: Sequence[Features],
    decision: Decision,
    corpus: CorpusStats,
    documents: dict,
) -> Answer:
    """Write the decision out: cited sentences, or a refusal that says why."""
    if not decision.answerable:
        return _refusal(question, cands, feats, decision, corpus, documents)
    citations, parts = [], []
    for n, i in enumerate(decision.chosen, start=1):
        cand = cands[i]
        citations.append(_citation(n, cand, float(decision.probabilities[i]), documents))
        parts.append(_with_marker(cand.text, n))
    return Answer(question.text, " ".join(parts), decision.short, True, decision.confidence,
                  tuple(citations))


def _refusal(
    question: Question,
    cands: Sequence[Candidate],
    feats: Sequence[Features],
    decision: Decision,
    corpus: CorpusStats,
    documents: dict,
) -> Answer:
    unknown = [t for t in question.names if not corpus.known(t)]
    best = cands[decision.order[0]] if decision.order else None
    absent = []
    if best is not None:
        words = token_set(best.hit.passage.text) | token_set(best.text)
        absent = [t for t in question.names if t not in unknown and t not in corpus.common
                  and t not in question.reference_terms and not present(t, words, corpus)]
    if unknown:
        text = f"The sources do not say: they never mention {_quoted(question.text, unknown)}."
    elif absent:
        text = (f"The sources do not say: the passages closest to the question do not mention "
                f"{_quoted(question.text, absent)}. They are listed for you to check.")
    elif question.kind in _CRISP_WORDS and _about_it_without_value(question, cands, feats, decision, corpus):
        how, what = _CRISP_WORDS[question.kind]
        text = (f"The sources do not say {how}: the closest passages give no {what} for it. "
                "They are listed for you to check.")
    else:
        text = "The sources do not say. The nearest passages are listed for you to check."
    nearest: list[Citation] = []
    used: set[str] = set()
    for i in decision.order:
        cand = cands[i]
        if cand.hit.passage.chunk_id in used:
            continue
        used.add(cand.hit.passage.chunk_id)
        nearest.append(_citation(len(nearest) + 1, cand, float(decision.probabilities[i]), documents))
        if len(nearest) == NEAREST_ON_REFUSAL:
            break
    return Answer(question.text, text, None, False, decision.confidence, tuple(nearest))


def _about_it_without_value(
    question: Question, cands: Sequence[Candidate], feats: Sequence[Features], decision: Decision,
    corpus: CorpusStats,
) -> bool:
    """Does the best sentence that names what the question names give no date, number or
    amount ("How many S-500 systems...": the S-500 is mentioned, never counted)?"""
    telling = [t for t in question.names if t not in corpus.common]
    for i in decision.order[:NEAREST_ON_REFUSAL * 3]:
        words = token_set(cands[i].text)
        if all(present(t, words, corpus) for t in telling):
            return bool(feats[i].typed_missing)
    return bool(decision.order) and bool(feats[decision.order[0]].typed_missing)


def _quoted(question: str, terms: list[str]) -> str:
    """The question's own spelling of terms ("F-35", not "f35"), quoted."""
    out = []
    for raw in re.findall(r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*", question):
        if tokens(raw) and tokens(raw)[0] in terms and raw not in out:
            out.append(raw)
    return ", ".join(f"“{t}”" for t in (out or terms)[:4])


def _citation(n: int, cand: Candidate, score: float, documents: dict) -> Citation:
    doc = documents[cand.source]
    return Citation(
        n=n,
        source=doc.source,
        title=doc.title,
        chunk_id=cand.hit.passage.chunk_id,
        passage=cand.hit.passage.text,
        quote=cand.text,
        start=cand.start,
        end=cand.end,
        score=round(score, 4),
        page=doc.page_at(cand.start),
    )


# "[7]", "[ 7 ]", "[7, 8]", "[7–9]", "[7][8]": a source's footnote marks in any spelling.
_SOURCE_MARKER = re.compile(r"\s?\[\s*\d+(?:\s*[-–,;]\s*\d+)*\s*\]")


def _with_marker(sentence: str, n: int) -> str:
    # A source's own footnote mark ("…2022.[1]") must not pass for one of our citation markers;
    # the quote in the citation keeps it.
    sentence = _SOURCE_MARKER.sub("", sentence)
    if sentence.endswith((".", "!", "?")) and not sentence.endswith("..."):
        return f"{sentence[:-1]} [{n}]{sentence[-1]}"
    return f"{sentence} [{n}]"
