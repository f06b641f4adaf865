"""Scoring a gold set (the format of shared/eval/dev.jsonl) through the service's own path.

The rules are those of shared/eval/README.md: texts compared after `normalise`, accuracy on the
first 400 characters of the answer or the short answer, evidence in a citation's passage or
quote. Citations are also checked for exactness (offsets, markers) on every answer.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BadRequest
from .text import normalise

Ask = Callable[..., dict[str, Any]]


@dataclasses.dataclass
class Report:
    mode: str
    answerable: int = 0
    correct: int = 0
    evidence: int = 0
    unanswerable: int = 0
    abstained: int = 0
    false_abstentions: int = 0
    followups: int = 0
    followups_correct: int = 0
    recall_at_5: int = 0
    reciprocal_ranks: float = 0.0
    citation_errors: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    misses: list[str] = dataclasses.field(default_factory=list)
    calibration: list[tuple[float, bool]] = dataclasses.field(default_factory=list)

    def figures(self) -> dict[str, float]:
        def share(a: int, b: int) -> float:
            return round(a / b, 3) if b else 0.0

        lat = sorted(self.latencies)
        return {
            "answer_accuracy": share(self.correct, self.answerable),
            "evidence_cited": share(self.evidence, self.answerable),
            "abstention_unanswerable": share(self.abstained, self.unanswerable),
            "false_abstentions": share(self.false_abstentions, self.answerable),
            "followup_accuracy": share(self.followups_correct, self.followups),
            "recall_at_5": share(self.recall_at_5, self.answerable),
            "mrr": round(self.reciprocal_ranks / self.answerable, 3) if self.answerable else 0.0,
            "citation_errors": self.citation_errors,
            "latency_p50_ms": round(statistics.median(lat), 1) if lat else 0.0,
            "latency_p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1)
            if lat else 0.0,
        }


def load_gold(path: Path) -> list[dict[str, Any]]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not ("question" in item or "turns" in item):
            raise BadRequest(f"{path}, line {number}: needs a 'question' or 'turns' field")
        items.append(item)
    return items


def is_correct(result: dict[str, Any], answers: list[str]) -> bool:
    shown = normalise(result["answer"][:400])
    short = normalise(result.get("short_answer") or "")
    return any(normalise(a) and (normalise(a) in shown or normalise(a) in short) for a in answers)


def citation_problems(result: dict[str, Any], texts: dict[str, str]) -> list[str]:
    """Everything that breaks the contract's rules for exact citations."""
    problems = []
    for c in result["citations"]:
        text = texts.get(c["source"])
        if text is None or text[c["start"]:c["end"]] != c["quote"]:
            problems.append(f"citation {c['n']}: offsets do not give the quote")
        if c["quote"] not in c["passage"]:
            problems.append(f"citation {c['n']}: quote not in passage")
    markers = [int(m) for m in re.findall(r"\[(\d+)\]", result["answer"])]
    if result["answerable"]:
        first_use = list(dict.fromkeys(markers))
        if first_use != list(range(1, len(first_use) + 1)):
            problems.append(f"markers not numbered 1..k in order of first use: {markers}")
        if set(markers) != {c["n"] for c in result["citations"]}:
            problems.append("a marker without a citation or a citation without a marker")
    return problems


def evaluate(
    items: list[dict[str, Any]], ask: Ask, texts: dict[str, str], mode: str = "hybrid"
) -> Report:
    report = Report(mode=mode)

    def timed(question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        began = time.perf_counter()
        result = ask(question, history=history, mode=mode, explain=True)
        report.latencies.append((time.perf_counter() - began) * 1000)
        for problem in citation_problems(result, texts):
            report.citation_errors += 1
            report.misses.append(f"citation: {question!r}: {problem}")
        return result

    for item in items:
        if "turns" in item:
            history: list[dict[str, str]] = []
            for i, turn in enumerate(item["turns"]):
                result = timed(turn["question"], history)
                ok = is_correct(result, turn["answers"])
                if i > 0:
                    report.followups += 1
                    report.followups_correct += ok
                    if not ok:
                        report.misses.append(
                            f"follow-up {item.get('id')}: {turn['question']!r} → "
                            f"{result['answer'][:160]!r}"
                        )
                history.append({"question": turn["question"], "answer": result["answer"]})
            continue
        result = timed(item["question"], [])
        if item.get("answerable") is False:
            report.unanswerable += 1
            report.abstained += not result["answerable"]
            # Confidence is in the answer being right; here no answer is right.
            report.calibration.append((result["confidence"], False))
            if result["answerable"]:
                report.misses.append(
                    f"should abstain {item.get('id')}: {item['question']!r} → "
                    f"{result['answer'][:160]!r}"
                )
            continue
        report.answerable += 1
        ok = is_correct(result, item["answers"])
        report.correct += ok
        report.calibration.append((result["confidence"], ok and result["answerable"]))
        if not result["answerable"]:
            report.false_abstentions += 1
        evidence = normalise(item.get("evidence", ""))
        cited = any(
            evidence in normalise(c["passage"]) or evidence in normalise(c["quote"])
            for c in result["citations"]
        )
        report.evidence += cited
        rank = _evidence_rank(result, evidence)
        if rank and rank <= 5:
            report.recall_at_5 += 1
        report.reciprocal_ranks += 1 / rank if rank else 0.0
        if not ok or not cited:
            what = "wrong answer" if not ok else "evidence not cited"
            report.misses.append(
                f"{what} {item.get('id')}: {item['question']!r} → {result['answer'][:160]!r}"
            )
    return report


def _evidence_rank(result: dict[str, Any], evidence: str) -> int | None:
    for rank, passage in enumerate(result.get("retrieved", []), start=1):
        if evidence in normalise(passage["text"]):
            return rank
    return None


def format_report(reports: list[Report]) -> str:
    names = list(reports[0].figures())
    header = f"{'figure':<26}" + "".join(f"{r.mode:>12}" for r in reports)
    lines = [header, "-" * len(header)]
    for name in names:
        lines.append(f"{name:<26}" + "".join(f"{r.figures()[name]:>12}" for r in reports))
    return "\n".join(lines)


CONFIDENCE_BUCKETS = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01))


def format_calibration(report: Report) -> str:
    """How often answers were right at each level of confidence: higher should be more often."""
    lines = ["confidence   answers   right"]
    for low, high in CONFIDENCE_BUCKETS:
        inside = [ok for c, ok in report.calibration if low <= c < high]
        share = f"{sum(inside) / len(inside):.2f}" if inside else "-"
        lines.append(f"{low:.2f}-{min(high, 1.0):.2f}  {len(inside):>7}   {share:>5}")
    return "\n".join(lines)
