from __future__ import annotations

import pytest

from qa_service.answering.aliases import Aliases, acronym, corpus_acronyms
from qa_service.text import tokens


def _t(word: str) -> str:
    return tokens(word)[0]


@pytest.mark.parametrize(
    ("term", "other"),
    [("Beijing", "China"), ("PRC", "China"), ("Moscow", "Russia"), ("USSR", "Soviet"),
     ("Tehran", "Iran"), ("USA", "America")],
)
def test_country_names_capitals_and_acronyms_stand_for_each_other(term, other):
    aliases = Aliases()
    assert aliases.present(_t(term), frozenset({_t(other)}))
    assert _t(other) in aliases.expansions(_t(term))


def test_unrelated_countries_are_not_aliases():
    assert not Aliases().present(_t("Beijing"), frozenset({_t("Russia")}))


def test_acronyms_defined_in_the_text_are_learned():
    found = corpus_acronyms(["The Shanghai Cooperation Organization (SCO) met; the WTO did not."])
    assert found == {"sco": frozenset(tokens("Shanghai Cooperation Organization"))}
    aliases = Aliases(found)
    assert aliases.present("sco", frozenset(tokens("shanghai cooperation organization summit")))
    assert not aliases.present("sco", frozenset(tokens("shanghai summit")))


def test_an_acronym_whose_letters_do_not_match_is_ignored():
    assert corpus_acronyms(["The Northern Fleet (SCO) sailed."]) == {}


def test_acronym_of_a_name():
    assert acronym("Union of Soviet Socialist Republics") == "USSR"
    assert acronym("People's Republic of China") == "PRC"
