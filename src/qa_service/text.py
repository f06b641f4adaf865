"""Tokens for lexical matching, shared by retrieval (BM25) and answering (term overlap).

Designations and numbers survive whole: "Su-27SK" → "su27sk", "S-300" → "s300",
"AL-31F/FN" → "al31f", "fn"; "$13 billion" → "13", "billion"; "10,000" → "10000".
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-.,'’][A-Za-z0-9]+)*")

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from into onto as is are was were be been
    being has have had do does did doing done this that these those there here it its it's they them
    their theirs he him his she her hers we us our you your i me my which who whom whose what when
    where why how whether not no nor so than then too very can could should would may might must
    shall will just about above after again against all also am any because before below between
    both during each few further more most other out over own same some such through under until
    up while off once only s t don now per via upon among within without around toward towards
    many much according""".split()
)

QUESTION_WORDS = frozenset("what which who whom whose when where why how".split())


def tokens(text: str) -> list[str]:
    """Lower-case tokens with designations joined, light plural stemming, no stopwords."""
    out: list[str] = []
    for raw in _TOKEN.findall(text.replace("/", " ")):
        out.extend(_word_tokens(raw))
    return out


_YEAR_RANGE = re.compile(r"\d{2,4}-\d{2,4}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")
_JOINERS = re.compile(r"[-']")
_PARTS = re.compile(r"[-.,']")


@lru_cache(maxsize=262144)
def _word_tokens(raw: str) -> tuple[str, ...]:
    """The tokens of one word; remembered, since words repeat (tokenising a corpus for its
    index is mostly the same few thousand words again)."""
    word = raw.lower().replace("’", "'")
    if _YEAR_RANGE.fullmatch(word):  # a range of years: 1992-2004
        return tuple(word.split("-"))
    if any(ch.isdigit() for ch in word):
        # Keep the decimal point of 2.5, drop the separators of 10,000 and Su-27.
        word = _JOINERS.sub("", _THOUSANDS.sub("", word))
        return (word.rstrip(".,"),)
    return tuple(stem(part) for part in _PARTS.split(word) if part and part not in STOPWORDS)


@lru_cache(maxsize=65536)
def token_set(text: str) -> frozenset[str]:
    """`tokens` as a set, remembered: the same sentences are scored for question after question."""
    return frozenset(tokens(text))


def stem(word: str) -> str:
    """A light suffix stripper: "fighters" ~ "fighter", "started" ~ "start",
    "upgrading" ~ "upgraded" ~ "upgrade". Crude on purpose: both sides are stemmed alike."""
    if len(word) > 4 and word.endswith(("ies", "ied")):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 5 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def normalise(text: str) -> str:
    """The eval's comparison form: lower-case letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", text.lower())
