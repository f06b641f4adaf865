"""Fitting the answer model, and judging it by leave-one-document-out cross-validation.

Every gold question is prepared once (analysis, retrieval, candidates, features: the stages that
do not depend on weights); models are then fitted and applied many times over those features.
A question belongs to the document its `source` names (or whose text holds its evidence); each
fold holds one document's questions out, fits on the rest, and answers the held-out ones, so no
reported figure comes from questions the weights were fitted on.

Labels: a candidate sentence is positive when it holds a gold answer and overlaps the gold
evidence; a question's answer is right when the eval's rule says so (evaluation.is_correct); an
unanswerable question's answer is never right. The confidence model learns P(right) from the
best candidate; the threshold is the one that maximises answered-and-right plus refused-and-
unanswerable on the training folds (SQuAD 2.0's rule for choosing a no-answer threshold).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import answering
from .answering.compose import rival_logits
from .answering.features import Features
from .answering.scorer import CONFIDENCE_INPUTS, Logistic, Scorer, confidence_row
from .chunking import split_sentences
from .evaluation import is_correct
from .text import normalise

# L2 strength of both logistic fits (scikit-learn's C). 0.5 and 2 gave the same CV accuracy
# within 0.005 on the training set; 1.0 is the library's default.
REGULARISATION_C = 1.0
RELIABILITY_BINS = 10
# Share of answerable training questions the threshold may refuse. Measured on the held-out
# folds (2026-11-22, 1,044 questions): refusing 0.05 of the answerable questions refused 0.19 of
# the unanswerable ones, 0.10 refused 0.33, 0.20 refused 0.46; with no budget the threshold
# refused 0.20 of the answerable. 0.08 keeps false refusals near the 0.05-0.10 users accept.
FALSE_REFUSAL_BUDGET = 0.08


@dataclasses.dataclass
class Example:
    """One gold question, prepared."""

    id: str
    group: str  # the document it is about: the unit of cross-validation
    prepared: answering.Prepared
    answers: list[str]
    evidence: str
    answerable: bool
    followup: bool = False

    def labels(self) -> np.ndarray:
        """1 for each candidate that holds a gold answer inside the gold evidence."""
        out = np.zeros(len(self.prepared.candidates))
        if not self.answerable:
            return out
        evidence = normalise(self.evidence)
        answers = [normalise(a) for a in self.answers if normalise(a)]
        for i, cand in enumerate(self.prepared.candidates):
            text = normalise(cand.text)
            if any(a in text for a in answers) and (
                not evidence or evidence in text or text in evidence or _overlap(text, evidence)
            ):
                out[i] = 1.0
        return out


def _overlap(text: str, evidence: str) -> bool:
    """The sentence and the evidence share a stretch of 20 normalised characters."""
    return any(evidence[i:i + 20] in text for i in range(0, max(1, len(evidence) - 19), 5))


def group_of(item: dict[str, Any], texts: dict[str, str]) -> str:
    if item.get("source"):
        return str(item["source"])
    evidence = normalise(item.get("evidence", ""))
    if evidence:
        for source, text in texts.items():
            if evidence in normalise(text):
                return source
    return "(no document)"


def prepare_examples(
    items: Iterable[dict[str, Any]],
    prepare: Callable[[str, list[dict[str, str]]], answering.Prepared],
    texts: dict[str, str],
) -> list[Example]:
    """Prepare every question and every conversation turn of `items` (gold-file records).

    A turn is asked after the earlier turns with, as the answer shown, the retrieved sentence
    that holds their gold answer (or the gold answer itself), so its features do not depend on
    the model being fitted.
    """
    out = []
    for item in items:
        group = group_of(item, texts)
        if "turns" in item:
            history: list[dict[str, str]] = []
            for n, turn in enumerate(item["turns"]):
                prepared = prepare(turn["question"], history)
                example = Example(f"{item.get('id')}#{n}", group, prepared, list(turn["answers"]),
                                  "", True, followup=n > 0)
                out.append(example)
                holding = [c.text for c, y in zip(prepared.candidates, example.labels()) if y]
                history.append({"question": turn["question"],
                                "answer": holding[0] if holding else turn["answers"][0]})
            continue
        answerable = item.get("answerable", True) is not False
        out.append(Example(str(item.get("id")), group, prepare(item["question"], []),
                           list(item.get("answers", [])), str(item.get("evidence", "")), answerable))
    return out


def _logistic(rows: np.ndarray, labels: np.ndarray, inputs: Sequence[str]) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
    model.fit((rows - mean) / scale, labels)
    return Logistic(tuple(inputs), mean, scale, model.coef_[0].copy(), float(model.intercept_[0]))


_NEUTRAL = Logistic(CONFIDENCE_INPUTS, np.zeros(len(CONFIDENCE_INPUTS)),
                    np.ones(len(CONFIDENCE_INPUTS)), np.zeros(len(CONFIDENCE_INPUTS)), 0.0)


@dataclasses.dataclass
class Outcome:
    """One example answered under one model."""

    example: Example
    result: dict[str, Any]  # the API's answer shape
    would_be_right: bool  # the best answer is right, whether or not it was given
    confidence: float


def _answer(example: Example, scorer: Scorer, corpus: answering.CorpusStats, documents: dict) -> Outcome:
    p = example.prepared
    decision = answering.decide(p.question, p.candidates, p.features, scorer, corpus)
    given = dataclasses.replace(decision, answerable=bool(decision.order))
    would_be = answering.answer(p.question, p.candidates, p.features, given, corpus, documents).to_dict()
    right = example.answerable and bool(decision.order) and is_correct(would_be, example.answers)
    result = (would_be if decision.answerable else
              answering.answer(p.question, p.candidates, p.features, decision, corpus, documents).to_dict())
    return Outcome(example, result, right, decision.confidence)


def _ranker(examples: Sequence[Example]) -> Logistic | None:
    """The ranker fitted on `examples`; None when they hold no positive or no negative."""
    rows, labels = [], []
    for ex in examples:
        if ex.prepared.features:
            rows.append(np.stack([f.vector() for f in ex.prepared.features]))
            labels.append(ex.labels())
    if not rows or len(set(np.concatenate(labels).tolist())) < 2:
        return None
    return _listwise(rows, labels, Features.names())


def _listwise(rows: list[np.ndarray], labels: list[np.ndarray], inputs: Sequence[str]) -> Logistic:
    """Weights that put the candidates holding the answer first within each question: a softmax
    over each question's candidates (a conditional logit), L2-regularised like `_logistic`.
    Measured against per-candidate logistic regression, held out: the best candidate held the
    answer for 0.834 of answerable questions against 0.823."""
    from scipy.optimize import minimize

    stacked = np.concatenate(rows)
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    scale[scale < 1e-9] = 1.0
    groups = [((x - mean) / scale, y / y.sum()) for x, y in zip(rows, labels) if y.sum() > 0]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = 0.5 * w @ w / REGULARISATION_C, w / REGULARISATION_C
        for x, y in groups:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            value -= float(y @ np.log(p + 1e-12))
            grad = grad - x.T @ (y - p)
        return value, grad

    weights = minimize(loss, np.zeros(stacked.shape[1]), jac=True, method="L-BFGS-B").x
    return Logistic(tuple(inputs), mean, scale, weights, 0.0)


def fit(
    examples: Sequence[Example], corpus: answering.CorpusStats, documents: dict,
    info: dict[str, Any] | None = None,
) -> Scorer:
    """Fit the ranker, then the confidence model and the threshold, on `examples`.

    The confidence model learns from rankings it has not seen fitted: each document's questions
    are ranked by a ranker fitted without that document (cross-fitting), so its inputs look like
    those of new questions, and its probabilities stay calibrated on them.
    """
    usable = [ex for ex in examples if ex.prepared.candidates]
    ranker = _ranker(usable)
    if ranker is None:
        raise ValueError("the training questions need candidates that hold an answer and others "
                         "that do not")
    conf_rows, conf_labels, answerable = [], [], []
    groups = sorted({ex.group for ex in usable})
    for group in groups:
        # With one document only, there is nothing to hold out: the ranker is its own.
        inner = Scorer(_ranker([ex for ex in usable if ex.group != group]) or ranker, _NEUTRAL, 0.0, {})
        for ex in (ex for ex in usable if ex.group == group):
            outcome = _answer(ex, inner, corpus, documents)
            logits = inner.rank(ex.prepared.features)
            order = sorted(range(len(logits)), key=lambda i: -logits[i])
            best = order[0]
            question = ex.prepared.question
            rivals = rival_logits(ex.prepared.candidates, order, logits)
            conf_rows.append(confidence_row(float(logits[best]), rivals, ex.prepared.features[best],
                                            question.kind in answering.spans.SHORT_KINDS
                                            and not outcome.result.get("short_answer"),
                                            question.kind, question.followup))
            conf_labels.append(float(outcome.would_be_right))
            answerable.append(ex.answerable)
    if len(set(conf_labels)) < 2:  # all right or all wrong: the base rate is all there is to learn
        rate = min(max(float(np.mean(conf_labels)), 0.01), 0.99)
        confidence = dataclasses.replace(_NEUTRAL, bias=float(np.log(rate / (1 - rate))))
    else:
        confidence = _logistic(np.stack(conf_rows), np.array(conf_labels), CONFIDENCE_INPUTS)
    probabilities = confidence.probabilities(np.stack(conf_rows))
    threshold = best_threshold(probabilities, np.array(conf_labels), np.array(answerable))
    return Scorer(ranker, confidence, threshold, info or {})


def best_threshold(probabilities: np.ndarray, right: np.ndarray, answerable: np.ndarray) -> float:
    """The threshold maximising answered-and-right plus refused-and-unanswerable, among those
    that refuse at most FALSE_REFUSAL_BUDGET of the answerable questions."""
    best_t, best_score = 0.0, -1.0
    for t in np.unique(np.concatenate([probabilities, [0.0]])):
        answered = probabilities >= t
        if answerable.any() and np.mean(~answered[answerable]) > FALSE_REFUSAL_BUDGET:
            continue
        score = float(np.sum(answered & (right > 0)) + np.sum(~answered & ~answerable))
        if score > best_score:
            best_t, best_score = float(t), score
    return best_t


def cross_validate(
    examples: Sequence[Example], corpus: answering.CorpusStats, documents: dict
) -> list[Outcome]:
    """Leave one document out: every example answered by a model fitted without its document."""
    outcomes: list[Outcome] = []
    groups = sorted({ex.group for ex in examples})
    for group in groups:
        train = [ex for ex in examples if ex.group != group]
        held = [ex for ex in examples if ex.group == group]
        scorer = fit(train, corpus, documents)
        outcomes.extend(_answer(ex, scorer, corpus, documents) for ex in held)
    return outcomes


_TYPED_KINDS = {"date", "number", "money", "person", "place", "designation", "name"}


def figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The issue's figures over answered examples: accuracy, evidence, refusals, short-answer
    exact match on typed questions, and the expected calibration error."""
    answerable = [o for o in outcomes if o.example.answerable]
    unanswerable = [o for o in outcomes if not o.example.answerable]
    correct = sum(1 for o in answerable if o.result["answerable"] and is_correct(o.result, o.example.answers))
    evidence = 0
    for o in answerable:
        ev = normalise(o.example.evidence)
        if not ev or any(ev in normalise(c["passage"]) or ev in normalise(c["quote"])
                         for c in o.result["citations"]):
            evidence += 1
    typed = [o for o in answerable if o.example.prepared.question.kind in _TYPED_KINDS]
    exact = sum(1 for o in typed if o.result["answerable"] and o.result.get("short_answer") and any(
        normalise(o.result["short_answer"]) == normalise(a) for a in o.example.answers))

    def share(a: int, b: int) -> float:
        return round(a / b, 3) if b else 0.0

    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "answer_accuracy": share(correct, len(answerable)),
        "evidence_cited": share(evidence, len(answerable)),
        "unanswerable_refused": share(sum(1 for o in unanswerable if not o.result["answerable"]),
                                      len(unanswerable)),
        "false_refusals": share(sum(1 for o in answerable if not o.result["answerable"]), len(answerable)),
        "short_exact_typed": share(exact, len(typed)),
        "typed_questions": len(typed),
        "ece": round(expected_calibration_error(outcomes), 3),
    }


def reliability(outcomes: Sequence[Outcome], bins: int = RELIABILITY_BINS) -> list[dict[str, Any]]:
    """Predicted confidence against how often the best answer was right, by equal-width bins."""
    table = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [o for o in outcomes
                  if low <= o.confidence < high or (b == bins - 1 and o.confidence == 1.0)]
        if not inside:
            continue
        table.append({
            "bin": f"{low:.1f}-{high:.1f}",
            "n": len(inside),
            "predicted": round(float(np.mean([o.confidence for o in inside])), 3),
            "observed": round(float(np.mean([o.would_be_right for o in inside])), 3),
        })
    return table


def expected_calibration_error(outcomes: Sequence[Outcome], bins: int = RELIABILITY_BINS) -> float:
    if not outcomes:
        return 0.0
    return sum(row["n"] * abs(row["predicted"] - row["observed"])
               for row in reliability(outcomes, bins)) / len(outcomes)


def format_cv(by_set: dict[str, dict[str, Any]], table: list[dict[str, Any]]) -> str:
    names = list(next(iter(by_set.values())))
    header = f"{'figure':<22}" + "".join(f"{k[:22]:>24}" for k in by_set)
    lines = [header, "-" * len(header)]
    for name in names:
        lines.append(f"{name:<22}" + "".join(f"{v[name]:>24}" for v in by_set.values()))
    lines.append("\nreliability (held-out folds): confidence bin, answers, predicted, observed right")
    for row in table:
        lines.append(f"  {row['bin']}  {row['n']:>5}  {row['predicted']:>6.3f}  {row['observed']:>6.3f}")
    return "\n".join(lines)


def data_fingerprint(paths: Sequence[Path]) -> list[dict[str, str]]:
    return [{"file": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()[:16]} for p in paths]


def model_info(command: str, gold: Sequence[Path], sources: Path, cv: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command,
        "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "gold": data_fingerprint(gold),
        "sources": sorted(p.name for p in sources.iterdir() if p.is_file()) if sources.is_dir() else [],
        "cross_validated": cv,
    }


# -- SQuAD 2.0 -----------------------------------------------------------------------------------


def squad_to_gold(path: Path) -> tuple[str, str, list[dict[str, Any]]]:
    """A SQuAD 2.0 file of one article → (title, document text, gold records).

    The document is the article's paragraphs, blank-line separated. An answerable question's
    evidence is the sentence of its paragraph that holds the first gold answer; every gold
    answer text is accepted. Unanswerable questions are `answerable: false`.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    articles = data["data"] if isinstance(data, dict) else data
    if len(articles) != 1:
        raise ValueError(f"{path}: expected one article, found {len(articles)}")
    article = articles[0]
    title = article["title"].replace("_", " ")
    source = f"squad-{normalise(title)}.txt"
    items = []
    for para in article["paragraphs"]:
        context = para["context"]
        sentences = split_sentences(context)
        for qa in para["qas"]:
            if qa.get("is_impossible"):
                items.append({"id": qa["id"], "question": qa["question"], "answerable": False,
                              "source": source})
                continue
            first = qa["answers"][0]
            at = first["answer_start"]
            sentence = next((context[s.start:s.end] for s in sentences if s.start <= at < s.end),
                            first["text"])
            answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
            items.append({"id": qa["id"], "question": qa["question"], "answers": answers,
                          "evidence": sentence, "source": source})
    text = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
    return source, f"---\ntitle: \"{title}\"\npublisher: Wikipedia (SQuAD 2.0)\n---\n\n{text}\n", items
