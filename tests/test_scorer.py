from __future__ import annotations

import json

import numpy as np
import pytest

from qa_service.answering import Features, Scorer
from qa_service.answering.scorer import CONFIDENCE_INPUTS, Logistic, confidence_row
from qa_service.errors import ModelError


def _logistic(inputs, weights, bias=0.0) -> Logistic:
    n = len(inputs)
    return Logistic(tuple(inputs), np.zeros(n), np.ones(n), np.array(weights, dtype=float), bias)


def test_logistic_standardises_then_weighs():
    model = Logistic(("a", "b"), np.array([1.0, 0.0]), np.array([2.0, 1.0]), np.array([1.0, -1.0]), 0.5)
    assert model.logits(np.array([3.0, 1.0]))[0] == pytest.approx((3 - 1) / 2 - 1 + 0.5)
    assert model.probabilities(np.array([1.0, 0.5]))[0] == pytest.approx(1 / (1 + np.exp(0.0)))
    assert Logistic.from_dict(model.to_dict()).to_dict() == model.to_dict()


def test_the_packaged_model_loads_and_says_how_it_was_made():
    scorer = Scorer.load()
    assert scorer.ranker.inputs == Features.names()
    assert 0.0 < scorer.threshold < 1.0
    assert scorer.info["command"].startswith("qa-service train")
    assert {"answer_accuracy", "unanswerable_refused", "ece"} <= set(scorer.info["cross_validated"])


def test_a_model_fitted_on_other_features_is_refused(tmp_path):
    data = Scorer.load().to_dict()
    data["features"] = data["features"][:-1]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="run `qa-service train`"):
        Scorer.load(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="not a readable answer model"):
        Scorer.load(path)


def test_confidence_row_takes_ranker_margin_and_the_best_features():
    feats = Features(*([0.0] * len(Features.names())))
    row = confidence_row(2.0, [-1.0, 0.5], feats, short_missing=True)
    values = dict(zip(CONFIDENCE_INPUTS, row))
    assert values["ranker"] == 2.0 and values["margin"] == 1.5 and values["short_missing"] == 1.0
    assert values["top_share"] == pytest.approx(1 / (1 + np.exp(-3.0) + np.exp(-1.5)))
    assert confidence_row(2.0, [], feats, False)[CONFIDENCE_INPUTS.index("margin")] == 5.0


def test_rank_and_confidence():
    names = Features.names()
    ranker = _logistic(names, [1.0 if n == "coverage" else 0.0 for n in names])
    confidence = _logistic(CONFIDENCE_INPUTS, [1.0 if n == "ranker" else 0.0 for n in CONFIDENCE_INPUTS])
    scorer = Scorer(ranker, confidence, 0.5, {})
    low = Features(*[0.2 if n == "coverage" else 0.0 for n in names])
    high = Features(*[0.9 if n == "coverage" else 0.0 for n in names])
    logits = scorer.rank([low, high])
    assert logits[1] > logits[0]
    assert scorer.confidence_of(float(logits[1]), [float(logits[0])], high, False) == pytest.approx(
        1 / (1 + np.exp(-0.9)))
