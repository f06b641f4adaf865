"""What answering may know of the corpus as a whole: a narrow interface over the index.

Term statistics (idf, how common a term is), other names for terms (aliases), and each
document's metadata (for questions that name or ask about a source). Built once per loaded
index; answering never reaches into the retriever or the store for more.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ..text import tokens
from .aliases import Aliases, corpus_acronyms

# Terms in a quarter of the passages or more tell no passage from another ("China" in a corpus
# about China): chosen on the seed corpus, where the next most common name is in 12 %.
COMMON_SHARE = 0.25


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
    def __init__(
        self,
        doc_freq: Mapping[str, int],
        passages: int,
        texts: Mapping[str, str],
        metadata: Mapping[str, Mapping[str, object]],
    ) -> None:
        self.doc_freq = dict(doc_freq)
        self.passages = max(1, passages)
        self.aliases = Aliases(corpus_acronyms(texts.values()))
        self.common = frozenset(t for t, f in self.doc_freq.items() if f / self.passages >= COMMON_SHARE)
        self.sources = tuple(_source_info(s, meta) for s, meta in metadata.items())
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
        return any(all(t in self.doc_freq for t in alias) for alias in self.aliases.of(term))


def _source_info(source: str, meta: Mapping[str, object]) -> SourceInfo:
    def field(name: str) -> str:
        value = meta.get(name)
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        return str(value or "")

    author, publisher, title = field("author"), field("publisher"), field("title")
    terms = set(tokens(publisher))
    for person in author.replace(" and ", ";").split(";"):
        words = tokens(person)
        if words:
            terms.add(words[-1])  # a surname
    return SourceInfo(source, title, author, publisher, field("date"), frozenset(terms),
                      frozenset(tokens(title)))
