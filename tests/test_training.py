"""Fitting and cross-validating the answer model: unit tests on the fake embedder, and the
held-out figures of the real model on the training sets (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa_service.config import Settings
from qa_service.evaluation import load_gold
from qa_service.service import QAService
from qa_service.training import (
    Example,
    Outcome,
    best_threshold,
    cross_validate,
    expected_calibration_error,
    figures,
    fit,
    prepare_examples,
    reliability,
    squad_to_gold,
)

from .conftest import ROOT, SOURCES

SQUAD = ROOT.parent / "shared" / "eval" / "external" / "squad2-dev-normans.json"
TRAINING_GOLD = sorted((ROOT / "training" / "gold").glob("*.jsonl"))

TINY_GOLD = [
    {"id": "a1", "question": "When was the Alpha treaty signed?", "answers": ["March 3, 2001"],
     "evidence": "signed on March 3, 2001", "source": "alpha.txt"},
    {"id": "a2", "question": "What powers the Alpha glider?", "answers": ["Zeta-7"],
     "evidence": "The Zeta-7 engine powers", "source": "alpha.txt"},
    {"id": "a3", "question": "How many river ports did the treaty cover?", "answers": ["40"],
     "evidence": "covered 40 river ports", "source": "alpha.txt"},
    {"id": "a4", "question": "How many pilots flew the glider?", "answerable": False, "source": "alpha.txt"},
    {"id": "b1", "question": "When did the Beta canal open?", "answers": ["1987"],
     "evidence": "opened in 1987", "source": "beta.md"},
    {"id": "b2", "question": "How much do boats pay in tolls?", "answers": ["$4 million"],
     "evidence": "pay $4 million a year", "source": "beta.md"},
    {"id": "b3", "question": "Who dug the Beta canal?", "answerable": False, "source": "beta.md"},
    {"id": "c1", "turns": [{"question": "When did the Beta canal open?", "answers": ["1987"]},
                           {"question": "What do boats pay there?", "answers": ["$4 million"]}],
     "source": "beta.md"},
]


@pytest.fixture
def tiny_examples(built_fake):
    texts = {d.source: d.text for d in built_fake.snapshot().data.documents.values()}
    return built_fake, prepare_examples(TINY_GOLD, built_fake.prepare, texts)


def test_examples_are_grouped_by_document_and_labelled_by_answer_and_evidence(tiny_examples):
    _, examples = tiny_examples
    assert [e.group for e in examples].count("alpha.txt") == 4
    assert len(examples) == 9 and examples[-1].followup and not examples[-2].followup
    treaty = examples[0]
    positives = [c.text for c, y in zip(treaty.prepared.candidates, treaty.labels()) if y]
    assert positives and all("March 3, 2001" in t for t in positives)
    assert examples[3].labels().sum() == 0  # unanswerable: nothing holds the answer


def test_fit_and_cross_validate_on_tiny_data(tiny_examples):
    service, examples = tiny_examples
    snap = service.snapshot()
    scorer = fit(examples, snap.corpus, snap.data.documents, {"command": "test"})
    assert 0.0 <= scorer.threshold <= 1.0 and scorer.info == {"command": "test"}
    outcomes = cross_validate(examples, snap.corpus, snap.data.documents)
    assert len(outcomes) == len(examples)
    result = figures(outcomes)
    assert result["questions"] == 9 and result["answerable"] == 7 and result["unanswerable"] == 2
    assert all(0.0 <= o.confidence <= 1.0 for o in outcomes)


def test_threshold_maximises_right_answers_plus_right_refusals_within_the_budget():
    probabilities = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    right = np.array([1, 1, 1, 0, 0, 0])
    answerable = np.array([True, True, True, True, False, False])
    # Refusing the answerable question at 0.3 would refuse a quarter of them, over the budget.
    assert best_threshold(probabilities, right, answerable) == pytest.approx(0.3)
    many = np.concatenate([np.linspace(0.5, 0.99, 30), [0.3, 0.4, 0.45]])
    right = np.array([1] * 30 + [0, 0, 0])
    answerable = np.array([True] * 31 + [False, False])
    # Now one answerable refusal in 31 is within it, and refusing at 0.5 is best.
    assert best_threshold(many, right, answerable) == pytest.approx(0.5)


def _outcome(confidence: float, right: bool) -> Outcome:
    example = Example("x", "g", None, [], "", True)  # type: ignore[arg-type]
    return Outcome(example, {}, right, confidence)


def test_reliability_and_calibration_error():
    outcomes = [_outcome(0.95, True)] * 9 + [_outcome(0.95, False)] + [_outcome(0.15, False)] * 10
    table = reliability(outcomes)
    assert [(row["bin"], row["n"], row["observed"]) for row in table] == [
        ("0.1-0.2", 10, 0.0), ("0.9-1.0", 10, 0.9)]
    assert expected_calibration_error(outcomes) == pytest.approx((10 * 0.05 + 10 * 0.15) / 20)


def test_squad_article_becomes_a_document_and_a_gold_set(tmp_path):
    article = {"version": "v2.0", "data": [{"title": "Tiny_Article", "paragraphs": [
        {"context": "The bridge opened in 1901. It was rebuilt in 1950.",
         "qas": [{"id": "q1", "question": "When was it rebuilt?", "is_impossible": False,
                  "answers": [{"text": "1950", "answer_start": 45}, {"text": "in 1950", "answer_start": 42}]},
                 {"id": "q2", "question": "Who painted it?", "is_impossible": True, "answers": [],
                  "plausible_answers": [{"text": "1901", "answer_start": 21}]}]},
        {"context": "A second paragraph.", "qas": []}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(article), encoding="utf-8")
    source, document, items = squad_to_gold(path)
    assert source == "squad-tinyarticle.txt"
    assert document.endswith("The bridge opened in 1901. It was rebuilt in 1950.\n\nA second paragraph.\n")
    assert items[0] == {"id": "q1", "question": "When was it rebuilt?", "answers": ["1950", "in 1950"],
                        "evidence": "It was rebuilt in 1950.", "source": source}
    assert items[1] == {"id": "q2", "question": "Who painted it?", "answerable": False, "source": source}


@pytest.mark.slow
def test_held_out_figures_of_the_real_model(tmp_path_factory, real_embedder):
    """Leave-one-document-out over the training sets and the SQuAD article: the floors hold
    (they sit a little under what `make cv` measured, so a real regression fails here)."""
    if not SQUAD.exists() or not TRAINING_GOLD:
        pytest.skip("the training sets or shared/eval/external are not here")
    base = tmp_path_factory.mktemp("training")
    shutil.copytree(SOURCES, base / "sources")
    source, document, items = squad_to_gold(SQUAD)
    (base / "sources" / source).write_text(document, encoding="utf-8")
    service = QAService(Settings(sources_dir=base / "sources", index_dir=base / "index"), real_embedder)
    service.build()
    snap = service.snapshot()
    texts = {d.source: d.text for d in snap.data.documents.values()}
    gold = [item for path in TRAINING_GOLD for item in load_gold(Path(path))] + items
    examples = prepare_examples(gold, service.prepare, texts)
    result = figures(cross_validate(examples, snap.corpus, snap.data.documents))
    assert result["answer_accuracy"] >= 0.75, result
    assert result["evidence_cited"] >= 0.85, result
    assert result["false_refusals"] <= 0.12, result
    assert result["unanswerable_refused"] >= 0.25, result
    assert result["ece"] <= 0.10, result
