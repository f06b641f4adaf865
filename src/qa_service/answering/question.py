"""Stage 1, question analysis: what is asked, about what, in which words, and from which source.

The question is analysed once into a `Question` and passed on; later stages never look at the
raw text again. Follow-ups fold the previous turn in; spelled-out numbers are read as numbers
("one hundred and forty" → 140); a question that names a source by title, author or publisher
("according to Kashin's paper") points at that source, and "the author of <source>" is replaced
by the author's name from the document's metadata, so "Where does the author of X work?" is
asked about a person like any other question.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from ..text import QUESTION_WORDS, normalise, tokens
from . import spans as extract
from .corpus import CorpusStats, SourceInfo

# Words that refer to a leaning-back subject: "What was it worth?".
_ANAPHORA = frozenset(
    "he she him her his hers it its they them their theirs that this these those there then "
    "same latter former".split()
)
# Nouns people use for a document: general English, not the names of our sources.
_DOCUMENT_WORDS = frozenset(tokens(
    "paper article report feature page piece study brief analysis source document text essay "
    "backgrounder overview website site post story author authors writer wrote written publisher "
    "published according"))
# Words that say what kind of answer is wanted, not what it is about: "What was it worth?" is
# answered by a sentence that gives an amount, whether or not it says "worth". General English.
TYPE_CUES = frozenset(tokens(
    "worth value cost price amount sum year years date day month time period decade century "
    "many much number count total size name called kind type sort place city country location"))
_AUTHOR_OF = re.compile(r"\b(?:the\s+)?(?:author|writer)s?\s+of\s+", re.I)
_MARKER = re.compile(r"\s*\[\d+\]")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# Weight of a word taken from the earlier turn, against 1.0 for the question's own words.
EARLIER_TURN_WEIGHT = 0.35
# Weight of the person a "he" or "she" stands for, named in the previous answer.
PRONOUN_WEIGHT = 0.8
# Weight of another name for a question word ("China" for "Beijing").
ALIAS_WEIGHT = 0.6


@dataclasses.dataclass(frozen=True)
class Question:
    """A question made ready for retrieval and scoring."""

    text: str  # as asked
    search_text: str  # what is embedded: the question, with an earlier turn or an author folded in
    kind: str  # extract.DATE, NUMBER, ...: what the answer should be
    period: bool  # a range answers it ("which years")
    share: bool  # a percentage answers it ("what share")
    year: bool  # "what year": the year of a full date answers it
    country: bool | None  # "which country" True, "which city" False, else None
    weights: dict[str, float]  # term → weight, for retrieval and coverage
    content: tuple[str, ...]  # the question's own content terms (no question words)
    names: frozenset[str]  # content terms written as names or designations
    numbers: frozenset[str]  # numbers the question states, digits or words, normalised
    sources: tuple[str, ...] = ()  # source ids the question names
    reference_terms: frozenset[str] = frozenset()  # the words that named them
    metadata_answer: str | None = None  # "who wrote X": the author the metadata gives
    followup: bool = False
    previous_answer: str = ""  # normalised, for a follow-up: what the reader already has

    @property
    def wanted(self) -> extract.Wanted:
        return extract.Wanted(self.kind, self.period, self.share, self.year, self.country)


def analyse(
    question: str,
    history: Sequence[Mapping[str, str]],
    corpus: CorpusStats,
    scope: Sequence[str] | None = None,
) -> Question:
    """Analyse `question`, asked after `history` (earlier turns: question and answer), over the
    sources in `scope` (None: all). A question about "the paper" that names no source, asked of
    one source only, is about that source: "Who wrote the paper?" is answered from its metadata.
    """
    reading = spell_numbers(question)
    own = tokens(reading)
    sources, reference_terms, author = _source_reference(question, own, corpus)
    by_scope = False
    if not sources and scope is not None and len(scope) == 1 and set(own) & _DOCUMENT_WORDS:
        sources = tuple(scope)
        info = next((i for i in corpus.sources if i.source == sources[0]), None)
        author = (info.author or info.publisher or None) if info else None
        by_scope = author is not None
    metadata_answer = None
    search_text = reading
    if author and _AUTHOR_OF.search(question) is None and re.search(
        r"\b(?:who|whom)\b.*\b(?:wrote|write|author|authored|written|publish)", question, re.I
    ):
        metadata_answer = author  # "Who wrote the CSIS feature?"
    elif author:
        # "Where does the author of the X paper work?" asks about the author by name.
        search_text = f"{reading} {author}"
        own = own + tokens(author)
    content = tuple(t for t in dict.fromkeys(own) if t not in QUESTION_WORDS)
    weights = {t: 1.0 for t in content}
    for term in reference_terms:
        if term in weights:
            weights[term] = 0.3  # names the source, not the content
    if by_scope and metadata_answer:
        # No word of the question leads to the byline, so the author's name is searched for,
        # weighed as words that name a source are.
        search_text = f"{reading} {metadata_answer}"
        for term in tokens(metadata_answer):
            weights.setdefault(term, 0.3)
    for term in content:
        for alias in corpus.aliases.expansions(term):
            weights.setdefault(alias, ALIAS_WEIGHT)
    names = _names(question) | (frozenset(tokens(author)) if author else frozenset())
    followup, previous_answer = False, ""
    if history and _leans_back(question, content):
        followup = True
        last = history[-1]
        earlier_q = str(last.get("question", ""))
        earlier_a = _MARKER.sub("", str(last.get("answer", "")))[:300]
        if re.search(r"\b(?:he|she|him|his|her)\b", question, re.I):
            # "Where does he work?": the person the last answer named is who is asked about.
            people = extract.spans(extract.PERSON, earlier_a)
            for term in tokens(people[0].text) if people else ():
                weights[term] = PRONOUN_WEIGHT
        for term in tokens(earlier_q) + tokens(earlier_a):
            weights.setdefault(term, EARLIER_TURN_WEIGHT)
        search_text = f"{search_text} {earlier_q} {earlier_a}"
        previous_answer = normalise(earlier_a)
    wanted = extract.wanted(question)
    return Question(
        text=question,
        search_text=search_text.strip(),
        kind=extract.PERSON if metadata_answer else wanted.kind,
        period=wanted.period,
        share=wanted.share,
        year=wanted.year,
        country=wanted.country,
        weights=weights,
        content=content,
        names=frozenset(t for t in names if t in weights),
        numbers=numbers_in(reading),
        sources=sources,
        reference_terms=reference_terms,
        metadata_answer=metadata_answer,
        followup=followup,
        previous_answer=previous_answer,
    )


def spell_numbers(text: str) -> str:
    """Spelled-out numbers as digits ("one hundred and forty engines" → "140 engines")."""
    if not re.search(r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"[a-z]+teen|[a-z]+ty|hundred|thousand|million|billion|dozen)\b", text, re.I):
        return text
    from number_parser import parse

    return parse(text)


def numbers_in(text: str) -> frozenset[str]:
    """The numbers `text` states, written as digits without separators ("10,000" → "10000")."""
    return frozenset(m.group(0).replace(",", "") for m in _NUMBER.finditer(text))


def _leans_back(question: str, content: tuple[str, ...]) -> bool:
    words = re.findall(r"[a-z']+", question.lower())
    return (
        any(w in _ANAPHORA for w in words)
        or len(content) <= 1
        or re.match(r"\s*(?:and|also|what about|how about)\b", question.lower()) is not None
    )


def _names(question: str) -> frozenset[str]:
    """Terms written as names: capitalised (not the first word), with digits, or quoted."""
    words = re.findall(r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*", question)
    out: set[str] = set()
    for i, word in enumerate(words):
        if (i > 0 and word[0].isupper()) or any(ch.isdigit() for ch in word):
            out.update(tokens(word))
    for quoted in re.findall(r"[“\"]([^”\"]{2,60})[”\"]", question):
        out.update(tokens(quoted))
    # Numbers, years and amounts are said in many ways ("mid-2016", "$30tn"); they are matched
    # as numbers, not as names.
    return frozenset(t for t in out if not re.fullmatch(
        r"[\d.,]+s?|(?:mid|early|late)?[\d.,]+(?:s|bn|mn|tn|m|b|k|th|st|nd|rd)?", t))


def _source_reference(
    question: str, own: list[str], corpus: CorpusStats
) -> tuple[tuple[str, ...], frozenset[str], str | None]:
    """The sources the question names ("Kashin's paper", "the CSIS feature"), the words that
    named them, and the author when exactly one source is named."""
    words = set(own)
    if not words & _DOCUMENT_WORDS and "'s" not in question and "’s" not in question:
        return (), frozenset(), None
    # A word names a source when few sources' metadata use it: the rarer, the surer.
    # Title words count for half, and only two or more of them: they are also content words.
    owners: dict[tuple[str, float], list[SourceInfo]] = {}
    for info in corpus.sources:
        for term in info.by_terms & words:
            owners.setdefault((term, 1.0), []).append(info)
        if len(info.title_terms & words) >= 2:
            for term in info.title_terms & words:
                owners.setdefault((term, 0.5), []).append(info)
    scores: dict[str, float] = {}
    used: set[str] = set()
    for (term, weight), infos in owners.items():
        if len(infos) > max(1, len(corpus.sources) // 3):
            continue
        for info in infos:
            scores[info.source] = scores.get(info.source, 0.0) + weight / len(infos)
            if weight == 1.0:
                used.add(term)
    if not scores or max(scores.values()) < 1.0:
        return (), frozenset(), None
    top = max(scores.values())
    named = tuple(s for s, v in scores.items() if v == top)
    author = None
    if len(named) == 1:
        info = next(i for i in corpus.sources if i.source == named[0])
        author = info.author or info.publisher or None
    return named, frozenset(used), author
