from __future__ import annotations

import dataclasses

from qa_service.answering import Features


def _by_text(prepared, needle):
    for cand, feats in zip(prepared.candidates, prepared.features):
        if needle in cand.text:
            return feats
    raise AssertionError(f"no candidate holds {needle!r}")


def test_one_named_float_per_field_with_a_docstring():
    names = Features.names()
    assert len(names) == len(set(names)) >= 20
    source = open(Features.__module__.replace(".", "/").join(["src/", ".py"]), encoding="utf-8").read()
    for name in names:
        assert f"    {name}: float\n    \"\"\"" in source, name


def test_coverage_and_typed_value(built_fake):
    prepared = built_fake.prepare("When was the Alpha treaty signed?")
    treaty = _by_text(prepared, "March 3, 2001")
    glider = _by_text(prepared, "Zeta-7")
    assert treaty.coverage > glider.coverage
    assert treaty.typed == 1.0 and treaty.typed_missing == 0.0
    assert glider.typed == 0.0 and glider.typed_missing == 1.0


def test_unknown_and_missing_names(built_fake):
    prepared = built_fake.prepare("How many Rafale jets did the Alpha treaty cover?")
    feats = _by_text(prepared, "river ports")
    assert feats.unknown_names == 0.5  # "Rafale" is nowhere; "Alpha" is
    assert feats.unknown > 0


def test_stated_numbers_missing_from_the_passage(built_fake):
    prepared = built_fake.prepare("What did the 1999 Alpha treaty cover?")
    assert _by_text(prepared, "river ports").numbers_missing == 1.0
    prepared = built_fake.prepare("What did the 2001 Alpha treaty cover?")
    assert _by_text(prepared, "river ports").numbers_missing == 0.0


def test_negation_mismatch(built_fake):
    prepared = built_fake.prepare("Which engine does not power the Alpha glider?")
    assert _by_text(prepared, "Zeta-7").negation_mismatch == 1.0


def test_vector_follows_the_field_order(built_fake):
    feats = built_fake.prepare("When was the Alpha treaty signed?").features[0]
    assert list(feats.vector()) == [float(v) for v in dataclasses.astuple(feats)]
