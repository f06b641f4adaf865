"""Retrieved passages → an answer made of source sentences, each cited exactly.

Sentences of the retrieved passages are scored against the question (meaning, the question's
key terms, and whether they hold the kind of thing asked for); the best one to three make the
answer. "Not in the sources" is a normal answer with `answerable=False`, never an exception.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import extract
from .chunking import Span
from .retrieval import Hit, Retriever
from .text import QUESTION_WORDS, normalise, token_set, tokens

_ANAPHORA = frozenset(
    "he she him her his hers it its they them their theirs that this these those there then "
    "same latter former".split()
)
_MARKER = re.compile(r"\s*\[\d+\]")
_WORD_SPAN = re.compile(r"[A-Za-z0-9]+(?:[-.,'’/][A-Za-z0-9]+)*")
MAX_ANSWER_SENTENCES = 3
_CRISP_KINDS = frozenset({extract.DATE, extract.NUMBER, extract.MONEY})
_TYPE_CUES = frozenset(tokens(
    "worth value cost price amount year date time period many much number name called "
    "place city country person"))
# Confidence at or above which a question counts as answered; calibrated with `qa-service eval`.
ANSWERABLE_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class Query:
    """A question made ready for retrieval: follow-ups carry the earlier turn in with them."""

    question: str
    text: str  # what is embedded
    weights: dict[str, float]  # term → weight; the question's own terms weigh most
    own_terms: tuple[str, ...]
    followup: bool
    previous_answer: str = ""  # normalised, for a follow-up: what the user has already read


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


@dataclasses.dataclass
class Candidate:
    passage_rank: int
    hit: Hit
    sentence: int  # index within the passage
    start: int  # document offsets; moved back when the sentence needs the one before it
    end: int
    text: str
    dense: float = 0.0
    coverage: float = 0.0
    typed: float = 0.0
    score: float = 0.0
    best_span: extract.Span | None = None
    absent: tuple[str, ...] = ()  # telling names of the question its passage lacks
    byline: bool = False  # the sentence names its document's author


def resolve_query(question: str, history: Sequence[dict[str, str]]) -> Query:
    """Fold the previous turn into a question that leans on it ("Where does he work?")."""
    own = tokens(question)
    weights = {t: 1.0 for t in own}
    words = re.findall(r"[a-z']+", question.lower())
    leans_back = bool(history) and (
        any(w in _ANAPHORA for w in words)
        or len([t for t in own if t not in QUESTION_WORDS]) <= 1
        or re.match(r"\s*(?:and|also|what about|how about)\b", question.lower()) is not None
    )
    if not leans_back:
        return Query(question, question, weights, tuple(own), False)
    last = history[-1]
    earlier_q = str(last.get("question", ""))
    earlier_a = _MARKER.sub("", str(last.get("answer", "")))[:300]
    # "he"/"she" stands for the person the last answer named: ask about that person by name.
    person = _person_in(earlier_a) if re.search(r"\b(?:he|she|him|his|her)\b", question, re.I) else None
    if person:
        question_text = re.sub(r"\b(?:he|she|him|his|her)\b", person, question, count=1,
                               flags=re.I)
        for term in tokens(person):
            weights[term] = 1.0
    else:
        question_text = question
    for term in tokens(earlier_q) + tokens(earlier_a):
        weights.setdefault(term, 0.35)
    text = f"{question_text} {earlier_q} {earlier_a}".strip()
    return Query(question, text, weights, tuple(own), True, normalise(earlier_a))


def _person_in(text: str) -> str | None:
    people = extract.spans(extract.PERSON, text)
    return people[0].text if people else None


_AUTHORSHIP = re.compile(r"\bwho (?:wrote|authored|is the author|was the author|published)\b|"
                         r"\bauthor of\b|\bwritten by\b", re.I)


def compose(
    query: Query,
    query_vector: np.ndarray,
    hits: Sequence[Hit],
    retriever: Retriever,
    own_vector: np.ndarray | None = None,
) -> Answer:
    """Pick the sentences that answer `query` from `hits` and cite them.

    `own_vector` is the embedding of a follow-up's own words, `query_vector` that of the
    question with the earlier turn folded in; sentences are compared with both.
    """
    data = retriever.data
    want = extract.wanted(query.question)
    kind = want.kind
    candidates = _candidates(hits, data)
    byline = _AUTHORSHIP.search(query.question) is not None
    if byline:
        bylines = _byline_candidates(hits, data)
        taken = {(c.hit.passage.source, c.start) for c in bylines}
        candidates = bylines + [
            c for c in candidates if (c.hit.passage.source, c.start) not in taken
        ]
    unknown = _unknown_terms(query, retriever)
    named = _named(query.question)
    if not candidates:
        return _not_answered(query, [], 0.0, unknown, named, data)
    idf = retriever.bm25.idf
    norm_question = normalise(query.question)
    for cand in candidates:
        row = data.sentence_rows[cand.hit.index][cand.sentence]
        vector = data.sentence_vectors[row]
        cand.dense = float(np.dot(vector, query_vector))
        if own_vector is not None:
            cand.dense = 0.5 * cand.dense + 0.5 * float(np.dot(vector, own_vector))
        if cand.byline:
            cand.typed = 2.0  # the document's own author, named in its text
        else:
            cand.best_span, cand.typed = _typed(want, cand.text, norm_question)
            _lean_on_previous(cand, data, want, norm_question)
        present = token_set(cand.text)
        cand.coverage = _coverage(query.weights, idf, present)
        if query.followup:
            # The follow-up's own words say what is asked; the earlier turn only says about what.
            # Words that only name the kind of answer ("worth", "when") are left to `typed`.
            own = {t: w for t, w in query.weights.items() if w >= 1.0 and t not in _TYPE_CUES}
            if own:
                cand.coverage = 0.5 * _coverage(own, idf, present) + 0.5 * cand.coverage
        fragment = 0.15 if len(re.findall(r"\b[a-z]{3,}\b", cand.text)) < 3 else 0.0
        repeated = 0.1 if query.previous_answer and normalise(cand.text) in query.previous_answer else 0.0
        # A passage without the question's telling names ("RD-93") speaks of something else.
        cand.absent = _absent_names(query, cand, unknown, named, retriever.common_terms)
        cand.score = (
            0.45 * cand.dense
            + 0.40 * cand.coverage
            + 0.25 * cand.typed
            + 0.05 / cand.passage_rank
            - fragment
            - repeated
            - 0.15 * len(cand.absent)
        )
    candidates.sort(key=lambda c: -c.score)
    best = candidates[0]
    confidence = _confidence(best, kind, query, unknown, named, retriever.common_terms)
    if confidence < ANSWERABLE_THRESHOLD:
        lacking = kind if kind in _CRISP_KINDS and best.typed < 0.3 else None
        return _not_answered(query, candidates, confidence, unknown, named, data, best.absent,
                             lacking)
    chosen = _choose(candidates, query)
    short = _short_answer(want, chosen, query, idf)
    citations, parts = [], []
    for n, cand in enumerate(chosen, start=1):
        citations.append(_citation(n, cand, data))
        parts.append(_with_marker(cand.text, n))
    return Answer(
        question=query.question,
        answer=" ".join(parts),
        short_answer=short,
        answerable=True,
        confidence=confidence,
        citations=tuple(citations),
    )


def _candidates(hits: Sequence[Hit], data: Any) -> list[Candidate]:
    seen: set[tuple[str, int, int]] = set()
    out = []
    for hit in hits:
        doc_text = data.documents[hit.passage.source].text
        for i, span in enumerate(hit.passage.sentences):
            key = (hit.passage.source, span.start, span.end)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Candidate(hit.rank, hit, i, span.start, span.end, doc_text[span.start:span.end])
            )
    return out


def _byline_candidates(hits: Sequence[Hit], data: Any) -> list[Candidate]:
    """For "who wrote ...": the first sentence of each retrieved document naming its author."""
    out: list[Candidate] = []
    seen: set[str] = set()
    for hit in hits:
        source = hit.passage.source
        doc = data.documents[source]
        author = str(doc.metadata.get("author") or "")
        if source in seen or not author:
            continue
        seen.add(source)
        at = doc.text.lower().find(author.lower())
        if at < 0:
            continue
        for i, passage in enumerate(data.passages):
            if passage.source != source or not passage.start <= at < passage.end:
                continue
            for j, span in enumerate(passage.sentences):
                if span.start <= at < span.end:
                    own_hit = Hit(i, passage, hit.score, hit.dense, hit.lexical, hit.rank)
                    name = doc.text[at:at + len(author)]
                    out.append(Candidate(
                        hit.rank, own_hit, j, span.start, span.end,
                        doc.text[span.start:span.end],
                        best_span=extract.Span(extract.PERSON, at - span.start,
                                               at - span.start + len(name), name),
                        byline=True,
                    ))
                    break
            break
    return out


def _coverage(weights: dict[str, float], idf: dict[str, float], present: set[str]) -> float:
    total = sum(w * idf.get(t, 1.0) for t, w in weights.items() if t not in QUESTION_WORDS)
    if not total:
        return 0.0
    got = sum(w * idf.get(t, 1.0) for t, w in weights.items() if t in present)
    return got / total


def _typed(
    want: extract.Wanted, sentence: str, norm_question: str
) -> tuple[extract.Span | None, float]:
    """The most precise span of the asked-for kind that the question does not already name."""
    if want.kind == extract.OTHER:
        return None, 0.0
    best, value = None, 0.0
    for span in extract.spans(want.kind, sentence):
        norm = normalise(span.text)
        if norm and norm not in norm_question:
            score = extract.specificity(span, want)
            if score > value:
                best, value = span, score
    return best, value


_LEANS_BACK = re.compile(r"(?:It|Its|This|These|They|Their|He|His|She|Her|That|Those)\b")


def _lean_on_previous(
    cand: Candidate, data: Any, want: extract.Wanted, norm_question: str
) -> None:
    """Take in the sentence before when this one needs it: "It included ..." says nothing
    alone, and a dated heading often sits just before the sentence that matches the question."""
    previous = _sentence_before(cand, data)
    if previous is None:
        return
    doc_text = data.documents[cand.hit.passage.source].text
    if "\n" in doc_text[previous.end:cand.start]:
        return  # another paragraph
    before = doc_text[previous.start:previous.end]
    span, typed = _typed(want, before, norm_question)
    needs_context = _LEANS_BACK.match(cand.text) is not None
    gains_type = typed > cand.typed + 0.3
    if not (needs_context or gains_type):
        return
    if previous.start < cand.hit.passage.start:
        # The citation's passage must hold the whole quote: the previous passage does, when
        # passages overlap; otherwise the sentence stays alone.
        index = cand.hit.index - 1
        earlier = data.passages[index]
        if not earlier.start <= previous.start or cand.end > earlier.end:
            return
        cand.hit = dataclasses.replace(cand.hit, index=index, passage=earlier)
        cand.sentence = next(i for i, s in enumerate(earlier.sentences) if s.end == cand.end)
    if gains_type:
        cand.best_span, cand.typed = span, 0.8 * typed
    cand.start = previous.start
    cand.text = doc_text[cand.start:cand.end]


def _sentence_before(cand: Candidate, data: Any) -> Span | None:
    """The sentence before the candidate's, looked up in the previous passage when the
    candidate opens its own."""
    if cand.sentence > 0:
        return cand.hit.passage.sentences[cand.sentence - 1]
    index = cand.hit.index - 1
    if index < 0 or data.passages[index].source != cand.hit.passage.source:
        return None
    earlier = [s for s in data.passages[index].sentences if s.end <= cand.start]
    return earlier[-1] if earlier else None


def _unknown_terms(query: Query, retriever: Retriever) -> list[str]:
    """The question's own content terms that occur nowhere in the indexed passages."""
    return [t for t in query.own_terms if t not in QUESTION_WORDS and t not in retriever.vocabulary]


def _named(question: str) -> set[str]:
    """Terms of the question written as names: capitalised (not first word) or with digits."""
    words = re.findall(r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*", question)
    out = set()
    for i, word in enumerate(words):
        if (i > 0 and word[0].isupper()) or any(ch.isdigit() for ch in word):
            out.update(tokens(word))
    # Numbers and times ("15", "2001", "mid-1990s") are said in many ways; they are no names.
    return {t for t in out if not re.fullmatch(r"[\d.,]+|\D*(?:1[6-9]|20)\d\ds?", t)}


def _confidence(
    best: Candidate,
    kind: str,
    query: Query,
    unknown: list[str],
    named: set[str],
    common: set[str],
) -> float:
    """A logistic score of how likely the best sentence answers the question.

    An unknown name ("Japan", "F-35") weighs far more than an unknown common word ("work");
    a name the sources know but the best passage lacks ("S-500" when it speaks of the
    S-400) means the passage answers another question.
    """
    own = [t for t in query.own_terms if t not in QUESTION_WORDS]
    absent = best.absent
    unknown_named = [t for t in unknown if t in named]
    unknown_share = min(1.0, 0.3 * (len(unknown) - len(unknown_named)) / len(own)) if own else 0.0
    if named:
        unknown_share = min(1.0, unknown_share + len(unknown_named) / len(named))
    # An acronym may be spelt out in the passage ("PRC", "USSR"): it counts for less.
    acronyms = {t for t in named if re.fullmatch(r"[A-Z]{2,6}", _original_words(query.question, [t])[0])}
    # A name the sources never mention is absent from the best passage too.
    absent_all = list(absent) + unknown_named
    telling = named - common  # "China" and "Russia" are in every other passage here
    absent_share = (
        sum(0.3 if t in acronyms else 1.0 for t in absent_all) / len(telling) if telling else 0.0
    )
    z = (
        7.0 * (best.dense - 0.35)
        + 3.0 * (best.coverage - 0.35)
        # The asked-for kind of thing (a date for "when") present, or missing. A "how many"
        # answered by a sentence with no number at all has not been answered.
        + (1.6 * min(best.typed, 1.0) - 0.8 if kind != extract.OTHER else 0.4)
        - (4.5 if kind in _CRISP_KINDS and best.typed < 0.3 else 0.0)
        - 6.0 * unknown_share
        - 6.0 * absent_share
    )
    return 1.0 / (1.0 + math.exp(-z))


def _absent_names(
    query: Query, best: Candidate, unknown: list[str], named: set[str], common: set[str]
) -> tuple[str, ...]:
    """Names of the question that the sources know but the best sentence's passage lacks.

    A word matches on its first four letters ("China" ~ "Chinese"); a designation or number
    only exactly or with a letter suffix ("Il-76" is in "Il-76MD"; "S-500" is not "S-400").
    Names found in a quarter of all passages are left out: they tell nothing apart.
    """
    if query.followup:
        return ()  # a follow-up's names may sit in the earlier turn's passage
    # The passage, not the sentence: "The exercise involves 10,000 troops" names its exercise
    # in the sentence before.
    present = token_set(best.hit.passage.text) | token_set(best.text)
    prefixes = {t[:4] for t in present if t.isalpha() and len(t) >= 4}
    absent = []
    for term in named:
        if term in unknown or term in present or term in QUESTION_WORDS or term in common:
            continue
        if any(ch.isdigit() for ch in term) and any(
            p.startswith(term) and p[len(term):].isalpha() for p in present
        ):
            continue
        if term.isalpha() and len(term) >= 4 and term[:4] in prefixes:
            continue
        absent.append(term)
    return tuple(absent)


def _choose(candidates: list[Candidate], query: Query) -> list[Candidate]:
    """The best sentence, plus up to two runners-up that add to it.

    A runner-up is taken when it is close and brings the question's terms the first lacks, or
    when another source states the asked-for fact more precisely ("October 2, 1949" beside
    "October 1949"): the reader then sees both and both are cited.
    """
    first = candidates[0]
    chosen = [first]
    if first.byline:
        return chosen  # "who wrote it" is answered by the byline alone
    covered = set(token_set(first.text))
    for cand in candidates[1:]:
        if len(chosen) == MAX_ANSWER_SENTENCES or cand.score < 0.7 * first.score:
            break
        if any(c.start < cand.end and cand.start < c.end and c.hit.passage.source
               == cand.hit.passage.source for c in chosen):
            continue  # overlaps a sentence already chosen
        said = normalise(cand.text)
        if any(said in normalise(c.text) or normalise(c.text) in said for c in chosen):
            continue  # the same words again (a title line repeating a sentence)
        if sum(len(c.text) for c in chosen) + len(cand.text) > 700:
            continue
        new_terms = {t for t in token_set(cand.text) if t in query.weights} - covered
        close = cand.score >= 0.85 * first.score and bool(new_terms)
        sharper = (
            first.best_span is not None
            and cand.best_span is not None
            and cand.hit.passage.source != first.hit.passage.source
            and extract.refines(cand.best_span.text, first.best_span.text)
        )
        if close or sharper:
            chosen.append(cand)
            covered |= token_set(cand.text)
    return chosen


def _short_answer(
    want: extract.Wanted, chosen: list[Candidate], query: Query, idf: dict[str, float]
) -> str | None:
    """The asked-for span of the first sentence, or a more precise statement of it."""
    if want.kind not in extract.SHORT_KINDS:
        return None
    short = None
    for cand in chosen:
        if cand.byline and cand.best_span is not None:
            return cand.best_span.text
        found = _span_near_terms(want, cand, query, idf)
        if found is None:
            continue
        if short is None or extract.refines(found, short):
            short = found
    return short


def _span_near_terms(
    want: extract.Wanted, cand: Candidate, query: Query, idf: dict[str, float]
) -> str | None:
    """The span of the asked-for kind nearest the question's rarest term in the sentence.

    "Which engine does the J-10 use?" over "J-11B (AL-31F engines), J-10 (AL-31FN)": the
    rare "J-10" anchors, not the common "engine"; a span just after its anchor is preferred.
    """
    norm_question = normalise(query.question)
    options = [
        s for s in extract.spans(want.kind, cand.text)
        if normalise(s.text) and normalise(s.text) not in norm_question
    ]
    if not options:
        return None
    top = max(extract.specificity(s, want) for s in options)
    options = [s for s in options if extract.specificity(s, want) == top]
    wanted_terms = {t for t in query.own_terms if t not in QUESTION_WORDS}
    anchors: list[tuple[float, int, int]] = []  # (weight, start, end)
    for m in _WORD_SPAN.finditer(cand.text):
        for term in tokens(m.group(0)):
            if term in wanted_terms:
                anchors.append((idf.get(term, 1.0), m.start(), m.end()))

    def closeness(span: extract.Span) -> float:
        # Every question term near the span pulls it, the rarer the harder; a span just after
        # a term ("J-10 (AL-31FN)") is nearer than one just before it.
        pull = 0.0
        for weight, start, end in anchors:
            if span.start >= end:
                gap = span.start - end
            else:
                gap = 1.5 * max(0, start - span.end)
            pull += weight / (1.0 + gap / 8.0)
        return pull - span.start * 1e-6  # ties: the earlier span

    return max(options, key=closeness).text


def _citation(n: int, cand: Candidate, data: Any) -> Citation:
    doc = data.documents[cand.hit.passage.source]
    return Citation(
        n=n,
        source=doc.source,
        title=doc.title,
        chunk_id=cand.hit.passage.chunk_id,
        passage=cand.hit.passage.text,
        quote=cand.text,
        start=cand.start,
        end=cand.end,
        score=round(cand.score, 4),
        page=doc.page_at(cand.start),
    )


def _with_marker(sentence: str, n: int) -> str:
    if sentence.endswith((".", "!", "?")) and not sentence.endswith("..."):
        return f"{sentence[:-1]} [{n}]{sentence[-1]}"
    return f"{sentence} [{n}]"


def _not_answered(
    query: Query,
    candidates: list[Candidate],
    confidence: float,
    unknown: list[str],
    named: set[str],
    data: Any,
    absent: Sequence[str] = (),
    lacking: str | None = None,
) -> Answer:
    own = [t for t in query.own_terms if t not in QUESTION_WORDS]
    mostly_unknown = bool(own) and len(unknown) * 2 >= len(own)
    if lacking and not any(t in named for t in unknown) and not absent:
        how, what = {extract.DATE: ("when", "date"), extract.NUMBER: ("how many", "number"),
                     extract.MONEY: ("how much", "amount")}[lacking]
        text = (f"The sources do not say {how}: the closest passages give no {what} for it. "
                "They are listed for you to check.")
    elif any(t in named for t in unknown) or (unknown and not absent and mostly_unknown):
        first = [t for t in unknown if t in named] or list(unknown)
        names = ", ".join(f"“{t}”" for t in _original_words(query.question, first)[:4])
        text = f"The sources do not say: they never mention {names}."
    elif absent:
        names = ", ".join(f"“{t}”" for t in _original_words(query.question, list(absent))[:4])
        text = (f"The sources do not say: the passages closest to the question do not "
                f"mention {names}. They are listed for you to check.")
    else:
        text = "The sources do not say. The nearest passages are listed for you to check."
    nearest: list[Citation] = []
    used_passages: set[str] = set()
    for cand in candidates:
        if cand.hit.passage.chunk_id in used_passages:
            continue
        used_passages.add(cand.hit.passage.chunk_id)
        nearest.append(_citation(len(nearest) + 1, cand, data))
        if len(nearest) == 3:
            break
    return Answer(
        question=query.question,
        answer=text,
        short_answer=None,
        answerable=False,
        confidence=confidence,
        citations=tuple(nearest),
    )


def _original_words(question: str, terms: list[str]) -> list[str]:
    """The question's own spelling of unknown terms ("F-35", not "f35")."""
    out = []
    for raw in re.findall(r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*", question):
        if tokens(raw) and tokens(raw)[0] in terms and raw not in out:
            out.append(raw)
    return out or terms


def passage_baseline(query: Query, hits: Sequence[Hit], data: Any) -> Answer:
    """The usual FAISS-only setup, for comparison: the top passage is the answer, always."""
    if not hits:
        return _not_answered(query, [], 0.0, [], set(), data)
    top = hits[0]
    doc = data.documents[top.passage.source]
    citation = Citation(
        n=1,
        source=doc.source,
        title=doc.title,
        chunk_id=top.passage.chunk_id,
        passage=top.passage.text,
        quote=top.passage.text,
        start=top.passage.start,
        end=top.passage.end,
        score=round(top.dense, 4),
        page=doc.page_at(top.passage.start),
    )
    return Answer(
        question=query.question,
        answer=f"{top.passage.text} [1]",
        short_answer=None,
        answerable=True,
        confidence=max(0.0, min(1.0, top.dense)),
        citations=(citation,),
    )
