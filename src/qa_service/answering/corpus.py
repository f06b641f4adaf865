"""What answering may know of the corpus as a whole: a narrow interface over the index.

Term statistics (idf, how common a term is), other names for terms (aliases), and each
document's metadata (for questions that name or ask about a source). Built once per loaded
index; answering never reaches into the retriever or the store for more.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from ..text import tokens
from .aliases import Aliases

# Terms in a quarter of the passages or more tell no passage from another ("China" in a corpus
# about China): chosen on the seed corpus, where the next most common name is in 12 %.
COMMON_SHARE = 0.25
# A word of an author's or publisher's name found in at most this share of passages can name
# the source. In the shipped corpus (96 passages): "Rostec" 3, "Kashin" 2, "CSIS" 0, but
# "Power" (of "CSIS China Power Team") 7 and "China" 75.
RARE_IN_TEXT_SHARE = 0.05


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """A document as a question may refer to it."""

    source: str
    title: str
    author: str
    publisher: str
    date: str
    by_terms: frozenset[str]  # author surnames and publisher words: "Kashin's paper"
    title_terms: frozenset[str]  # words of the title: "the military-technical cooperation paper"


class CorpusStats:
    """`doc_freq` may count on demand (the index's is a view, not a dict); `acronyms` are those
    the texts define (`aliases.corpus_acronyms`); `common`, the terms in COMMON_SHARE of the
    passages or more, is counted from `doc_freq` when not given."""

    def __init__(
        self,
        doc_freq: Mapping[str, int],
        passages: int,
        acronyms: Mapping[str, frozenset[str]],
        metadata: Mapping[str, Mapping[str, object]],
        common: frozenset[str] | None = None,
    ) -> None:
        self.doc_freq = doc_freq
        self.passages = max(1, passages)
        self.aliases = Aliases(dict(acronyms))
        self.common = common if common is not None else frozenset(
            t for t, f in doc_freq.items() if f / self.passages >= COMMON_SHARE)
        rare = max(1, int(RARE_IN_TEXT_SHARE * self.passages))
        self.sources = tuple(_source_info(s, meta, self.doc_freq, rare) for s, meta in metadata.items())
        # Words of titles, authors and publishers: "the CSIS feature" names a source, not nothing.
        self.metadata_terms = frozenset().union(*(i.by_terms | i.title_terms for i in self.sources))

    def idf(self, term: str) -> float:
        """BM25's idf: rare terms weigh more; a term the corpus never uses weighs most."""
        f = self.doc_freq.get(term, 0)
        return math.log(1 + (self.passages - f + 0.5) / (f + 0.5))

    def known(self, term: str) -> bool:
        """Does the corpus use `term`, or another name for it?"""
        if term in self.doc_freq or term in self.metadata_terms:
            return True
        if any(all(t in self.doc_freq for t in alias) for alias in self.aliases.of(term)):
            return True
        # "S-400-related", "Tu-95s": a designation the corpus knows, with a word stuck to it.
        match = re.fullmatch(r"([a-z]*\d+[a-z]?\d*)([a-z]+)", term)
        return match is not None and match.group(1) in self.doc_freq


def _source_info(
    source: str, meta: Mapping[str, object], doc_freq: Mapping[str, int], rare: int
) -> SourceInfo:
    def field(name: str) -> str:
        value = meta.get(name)
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        return str(value or "")

    author, publisher, title = field("author"), field("publisher"), field("title")
    # A source is named by its author's surname or by words of its author or publisher that the
    # texts themselves hardly use ("CSIS", "Rostec"), not by "China" in "CSIS China Power Team".
    terms = {t for t in tokens(f"{author} {publisher}") if doc_freq.get(t, 0) <= rare}
    for person in author.replace(" and ", ";").split(";"):
        words = tokens(person)
        if words:
            terms.add(words[-1])  # a surname
    return SourceInfo(source, title, author, publisher, field("date"), frozenset(terms),
                      frozenset(tokens(title)) | frozenset(tokens(f"{author} {publisher}")))
