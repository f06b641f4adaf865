"""Stage 4, the scorer: fitted weights over named features, loaded from a versioned model file.

Two logistic models, fitted by `qa-service train` (see `training.py`) and saved together in
`model.json` beside this module, with the command and the data that produced them:

- the *ranker* gives each candidate sentence a probability that it holds the answer;
- the *confidence* model gives the chosen answer a probability that it is right, from the best
  candidate's features and how far it stands ahead; below the fitted threshold the service
  says the sources do not say.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .features import Features

MODEL_FORMAT = 1
MODEL_FILE = "model.json"


@dataclasses.dataclass(frozen=True)
class Logistic:
    """A logistic model over named inputs, standardised with the training set's mean and scale."""

    inputs: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logits(self, rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(rows)
        return ((rows - self.mean) / self.scale) @ self.weights + self.bias

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(rows)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(float(self.bias), 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Logistic:
        return cls(
            tuple(data["inputs"]),
            np.array(data["mean"], dtype=np.float64),
            np.array(data["scale"], dtype=np.float64),
            np.array(data["weights"], dtype=np.float64),
            float(data["bias"]),
        )


# Kinds of question the confidence model knows apart (the rest: "other").
KINDS = ("date", "number", "money", "person", "place", "designation", "name", "reason")
# What the confidence model sees of a question's best candidate, beyond the ranker's verdict.
CONFIDENCE_INPUTS = (
    "ranker", "margin", "top_share", "coverage", "own_coverage", "passage_coverage", "bigrams",
    "name_coverage", "names_missing", "any_name_missing", "unknown", "unknown_names",
    "missing_terms", "missing_rarest", "negation_mismatch", "typed", "typed_missing", "open_kind",
    "numbers_missing", "dense", "source_match", "short_missing", "followup",
) + tuple(f"kind_{k}" for k in KINDS)


def confidence_row(
    best_logit: float, rival_logits: Sequence[float], best: Features, short_missing: bool,
    kind: str = "other", followup: bool = False,
) -> np.ndarray:
    """The confidence model's inputs for a question (of `kind`) whose best candidate is `best`;
    `rival_logits` are those of the candidates that quote other text (not the best one again
    with or without the sentence before it)."""
    rivals = np.asarray(rival_logits, dtype=np.float64)
    margin = best_logit - rivals.max() if len(rivals) else 5.0
    shares = np.exp(np.concatenate([[0.0], rivals - best_logit]))
    values = {
        "ranker": best_logit,
        "margin": min(margin, 5.0),
        "short_missing": float(short_missing),
        "top_share": float(1.0 / shares.sum()),  # the best one's part of all candidates' weight
        "followup": float(followup),
        **{f"kind_{k}": float(kind == k) for k in KINDS},
    }
    return np.array(
        [values[name] if name in values else getattr(best, name) for name in CONFIDENCE_INPUTS],
        dtype=np.float64,
    )


@dataclasses.dataclass(frozen=True)
class Scorer:
    ranker: Logistic
    confidence: Logistic
    threshold: float  # answer when the confidence reaches it
    info: dict[str, Any]  # how the model was made: command, data, date, cross-validated figures

    def rank(self, feats: Sequence[Features]) -> np.ndarray:
        """Ranker logits, one per candidate."""
        if not feats:
            return np.zeros(0)
        return self.ranker.logits(np.stack([f.vector() for f in feats]))

    def confidence_of(
        self, best_logit: float, rival_logits: Sequence[float], best: Features, short_missing: bool,
        kind: str = "other", followup: bool = False,
    ) -> float:
        row = confidence_row(best_logit, rival_logits, best, short_missing, kind, followup)
        return float(self.confidence.probabilities(row)[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "features": list(Features.names()),
            "ranker": self.ranker.to_dict(),
            "confidence": self.confidence.to_dict(),
            "threshold": round(self.threshold, 4),
            "info": self.info,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = MODEL_FILE) -> Scorer:
        if data.get("format") != MODEL_FORMAT:
            raise ModelError(f"{where}: model format {data.get('format')!r}, expected "
                             f"{MODEL_FORMAT}: run `qa-service train` to refit it")
        if list(data.get("features", [])) != list(Features.names()) or tuple(
            data["ranker"]["inputs"]) != Features.names():
            raise ModelError(f"{where}: fitted on other features than this version computes: "
                             "run `qa-service train` to refit it")
        if tuple(data["confidence"]["inputs"]) != CONFIDENCE_INPUTS:
            raise ModelError(f"{where}: confidence inputs differ from this version's: "
                             "run `qa-service train` to refit it")
        return cls(Logistic.from_dict(data["ranker"]), Logistic.from_dict(data["confidence"]),
                   float(data["threshold"]), dict(data.get("info", {})))

    @classmethod
    def load(cls, path: Path | None = None) -> Scorer:
        """The model shipped with the package, or the one at `path`."""
        if path is None:
            text = resources.files(__package__).joinpath(MODEL_FILE).read_text(encoding="utf-8")
            return cls.from_dict(json.loads(text))
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), str(path))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: not a readable answer model ({exc})") from None

