"""The shared tokeniser: designations and numbers kept whole, light stemming, no stopwords."""

from __future__ import annotations

import pytest

from qa_service.text import normalise, stem, token_set, tokens


@pytest.mark.parametrize(("text", "expected"), [
    ("Su-27SK and S-300PMU-2", ["su27sk", "s300pmu2"]),
    ("AL-31F/FN engines", ["al31f", "fn", "engin"]),
    ("$13 billion for 10,000 troops", ["13", "billion", "10000", "troop"]),
    ("from 1992-2004", ["1992", "2004"]),
    ("a 2.5 percent share", ["2.5", "percent", "shar"]),  # crude on purpose: both sides alike
    ("Russia’s fighters were upgrading", ["russia", "fighter", "upgrad"]),
    ("It is what it is.", []),
])
def test_tokens(text, expected):
    assert tokens(text) == expected


def test_the_same_word_gives_the_same_tokens_wherever_it_stands():
    assert tokens("fighters fighters. Fighters,") == ["fighter"] * 3
    assert token_set("The fighters of the fleet") == frozenset({"fighter", "fleet"})


def test_stem_and_normalise():
    assert stem("countries") == "country" and stem("started") == "start"
    assert stem("upgrading") == stem("upgraded") == "upgrad"
    assert normalise("Su-27SK, 1992!") == "su27sk1992"
