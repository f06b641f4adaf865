"""Stage 3, features: named measurements of how well one candidate sentence answers a question.

Each field of `Features` is one number with a docstring saying what it measures; the scorer
(stage 4) holds the weights. Nothing here decides anything.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..text import normalise, token_set, tokens
from . import spans as extract
from .candidates import Candidate
from .corpus import CorpusStats
from .question import TYPE_CUES, Question, numbers_in

_CRISP = frozenset({extract.DATE, extract.NUMBER, extract.MONEY})


@dataclasses.dataclass(frozen=True)
class Features:
    dense: float
    """Cosine of sentence and question (a follow-up: half its own words, half with the earlier turn)."""
    passage_dense: float
    """Cosine of the whole passage and the question."""
    passage_lexical: float
    """BM25 of the passage, over the best BM25 among the retrieved passages."""
    reciprocal_rank: float
    """1 / the passage's rank after retrieval."""
    coverage: float
    """Share of the question's term weight (idf-weighted) found in the sentence; other names count."""
    passage_coverage: float
    """The same over the sentence's whole passage."""
    own_coverage: float
    """Share of the question's own words (not an earlier turn's, not other names) in the sentence."""
    bigrams: float
    """Share of the question's adjacent term pairs that stand adjacent in the sentence too."""
    missing_terms: float
    """How many of the question's own content terms the sentence lacks (other names count; at most 5)."""
    missing_rarest: float
    """idf of the rarest own term the sentence lacks, over the idf of the question's rarest term."""
    missing_nearby: float
    """How many own terms the sentence lacks but its passage has (swapped in from nearby; at most 3)."""
    span_pull: float
    """How close the best span of the asked-for kind stands to the question's words (0 when none)."""
    negation_mismatch: float
    """1 when one of question and sentence is negated ("not", "never", "no") and the other is not."""
    name_coverage: float
    """Share of the question's names and designations found in the sentence (1 when it has none)."""
    names_missing: float
    """Share of the question's telling names (known to the corpus, not ubiquitous) the passage lacks."""
    any_name_missing: float
    """1 when at least one telling name of the question is absent from the passage."""
    unknown: float
    """Share of the question's content terms the corpus never uses (the same for every candidate)."""
    unknown_names: float
    """Share of the question's names the corpus never uses (the same for every candidate)."""
    typed: float
    """How precisely the sentence gives the asked-for kind (a full date 1.0, a year 0.8; 0 if none)."""
    typed_missing: float
    """1 when a when / how many / how much question meets a sentence with no date, number or amount."""
    open_kind: float
    """1 when the question asks for no typed value (how, why, what about)."""
    numbers_missing: float
    """Share of the numbers the question states that the passage does not."""
    source_match: float
    """+1 from a source the question names, -1 from another one, 0 when it names none."""
    metadata: float
    """1 when the sentence holds the metadata value the question asks for (the author of a named source)."""
    repeated: float
    """1 when a follow-up meets a sentence the previous answer already gave."""
    fragment: float
    """1 for a sentence of fewer than three lower-case words (a heading, a caption)."""
    length: float
    """log of the sentence's number of terms."""
    context: float
    """1 when the quote took in the sentence before."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def vector(self) -> np.ndarray:
        # Every field is a float: no deep copy (dataclasses.astuple) needed.
        return np.array([getattr(self, name) for name in _NAMES], dtype=np.float64)


_NAMES = Features.names()


def features(
    question: Question,
    cands: Sequence[Candidate],
    corpus: CorpusStats,
    query_vector: np.ndarray,
    own_vector: np.ndarray | None = None,
) -> list[Features]:
    """Features of every candidate of `question`."""
    if not cands:
        return []
    best_lexical = max(c.hit.lexical for c in cands) or 1.0
    unknown_terms = [t for t in question.content if not corpus.known(t)]
    unknown = len(unknown_terms) / len(question.content) if question.content else 0.0
    unknown_names = (
        sum(1 for t in question.names if t in unknown_terms) / len(question.names)
        if question.names else 0.0
    )
    telling = [t for t in question.names if t not in unknown_terms and t not in corpus.common
               and t not in question.reference_terms]
    pairs = _pairs(question)
    own_idf = {t: corpus.idf(t) for t in question.content
               if t not in question.reference_terms and t not in TYPE_CUES}
    top_idf = max(own_idf.values(), default=1.0) or 1.0
    negated = _negated(question.text)
    anchors = {t: w * corpus.idf(t) for t, w in question.weights.items()}
    out = []
    for cand in cands:
        words = token_set(cand.text)
        passage_words = token_set(cand.hit.passage.text) | words
        dense = float(np.dot(cand.vector, query_vector))
        if own_vector is not None:
            dense = 0.5 * dense + 0.5 * float(np.dot(cand.vector, own_vector))
        typed = _typed(question, cand.text)
        absent = [t for t in telling if not present(t, passage_words, corpus)]
        present_names = [t for t in question.names if present(t, words, corpus)]
        stated = _numbers(cand.hit.passage.text) | _numbers(cand.text)
        missing = [t for t in own_idf if not present(t, words, corpus)]
        out.append(Features(
            dense=dense,
            passage_dense=cand.hit.dense,
            passage_lexical=cand.hit.lexical / best_lexical,
            reciprocal_rank=1.0 / cand.hit.rank,
            coverage=_coverage(question, words, corpus),
            passage_coverage=_coverage(question, passage_words, corpus),
            own_coverage=(sum(own_idf[t] for t in own_idf if present(t, words, corpus))
                          / sum(own_idf.values()) if own_idf else 1.0),
            bigrams=_bigram_share(pairs, cand.text),
            missing_terms=float(min(5, len(missing))),
            missing_rarest=max((own_idf[t] for t in missing), default=0.0) / top_idf,
            missing_nearby=float(min(3, sum(1 for t in missing if present(t, passage_words, corpus)))),
            span_pull=_span_pull(question, cand.text, anchors),
            negation_mismatch=float(negated != _negated(cand.text)),
            name_coverage=len(present_names) / len(question.names) if question.names else 1.0,
            names_missing=len(absent) / len(telling) if telling else 0.0,
            any_name_missing=float(bool(absent) or unknown_names > 0),
            unknown=unknown,
            unknown_names=unknown_names,
            typed=typed,
            typed_missing=float(question.kind in _CRISP and typed < 0.3),
            open_kind=float(question.kind not in extract.SHORT_KINDS),
            numbers_missing=(
                len(question.numbers - stated) / len(question.numbers) if question.numbers else 0.0
            ),
            source_match=(0.0 if not question.sources else 1.0 if cand.source in question.sources
                          else -1.0),
            metadata=float(bool(question.metadata_answer)
                           and question.metadata_answer.lower() in cand.text.lower()),
            repeated=float(bool(question.previous_answer)
                           and normalise(cand.text) in question.previous_answer),
            fragment=float(len(re.findall(r"\b[a-z]{3,}\b", cand.text)) < 3),
            length=math.log(1 + len(words)),
            context=float(cand.context),
        ))
    return out


def present(term: str, words: frozenset[str] | set[str], corpus: CorpusStats) -> bool:
    """A term, another name for it, or a word sharing its first four letters ("China" ~
    "Chinese"); a designation only exactly or with a letter suffix ("Il-76" in "Il-76MD")."""
    if corpus.aliases.present(term, words):
        return True
    if any(ch.isdigit() for ch in term):
        return any(w.startswith(term) and w[len(term):].isalpha() for w in words)
    if term.isalpha() and len(term) >= 4:
        return any(w[:4] == term[:4] and w.isalpha() for w in words)
    return False


def _coverage(question: Question, words: frozenset[str] | set[str], corpus: CorpusStats) -> float:
    total = got = 0.0
    for term, weight in question.weights.items():
        w = weight * corpus.idf(term)
        total += w
        if corpus.aliases.present(term, words):
            got += w
    return got / total if total else 0.0


def _typed(question: Question, sentence: str) -> float:
    """The specificity of the most precise span of the asked-for kind the question does not name."""
    if question.kind == extract.OTHER:
        return 0.0
    asked = normalise(question.text)
    best = 0.0
    for span in extract.spans(question.kind, sentence):
        norm = normalise(span.text)
        if norm and norm not in asked:
            best = max(best, extract.specificity(span, question.wanted))
    return best


def _span_pull(question: Question, sentence: str, anchors: dict[str, float]) -> float:
    if question.kind not in extract.SHORT_KINDS:
        return 0.0
    span = extract.best_span(question.wanted, sentence, question.text, anchors, tokens)
    if span is None:
        return 0.0
    total = sum(anchors.values()) or 1.0
    return extract.pull(span, sentence, anchors, tokens) / total


@lru_cache(maxsize=65536)
def _numbers(text: str) -> frozenset[str]:
    return numbers_in(text)


_NEGATION = re.compile(r"\b(?:not|never|no|none|nor|neither|without|n't)\b|n't\b", re.I)


@lru_cache(maxsize=65536)
def _negated(text: str) -> bool:
    return _NEGATION.search(text) is not None


def _pairs(question: Question) -> list[tuple[str, str]]:
    own = [t for t in tokens(question.text) if t in question.weights]
    return list(zip(own, own[1:]))


@lru_cache(maxsize=65536)
def _sequence(text: str) -> tuple[str, ...]:
    return tuple(tokens(text))


def _bigram_share(pairs: list[tuple[str, str]], sentence: str) -> float:
    if not pairs:
        return 0.0
    seq = _sequence(sentence)
    present = set(zip(seq, seq[1:]))
    return sum(1 for p in pairs if p in present) / len(pairs)
