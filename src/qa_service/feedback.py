"""Readers' verdicts on answers, kept in an embedded SQLite database under the data folder.

One row per verdict: the question, the history it was asked with, the answer and its citations,
the index build that answered, the verdict (up or down), an optional comment and the time.
Export gives the rows in the gold format of `shared/eval/README.md` plus the verdict fields, so
a reviewer can turn them into gold questions.

Below the service in the layers: it knows nothing of Flask, the index or the answering stages.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import QAError

DATABASE_NAME = "feedback.sqlite3"
SCHEMA_VERSION = 1
VERDICTS = ("up", "down")
CSV_FIELDS = ("id", "created_at", "verdict", "comment", "question", "answer", "short_answer",
              "answerable", "confidence", "index_version", "sources", "evidence", "history")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    verdict       TEXT NOT NULL CHECK (verdict IN ('up', 'down')),
    comment       TEXT NOT NULL DEFAULT '',
    question      TEXT NOT NULL,
    history       TEXT NOT NULL,   -- JSON list of {question, answer}
    answer        TEXT NOT NULL,
    short_answer  TEXT,
    answerable    INTEGER NOT NULL,
    confidence    REAL,
    citations     TEXT NOT NULL,   -- JSON list of {n, source, title, quote, start, end}
    sources       TEXT,            -- JSON list of the source ids searched; NULL: all
    index_version TEXT NOT NULL
);
"""


class FeedbackError(QAError):
    code = "feedback_store_error"
    status = 500


@dataclass(frozen=True)
class Feedback:
    """One verdict as it is stored."""

    id: int
    created_at: str
    verdict: str
    comment: str
    question: str
    history: list[dict[str, str]]
    answer: str
    short_answer: str | None
    answerable: bool
    confidence: float | None
    citations: list[dict[str, Any]]
    sources: list[str] | None
    index_version: str

    def gold(self) -> dict[str, Any]:
        """The row in the gold format (`shared/eval/README.md`) plus the verdict fields.

        An answered question gives `answers` (its short answer, when it has one) and `evidence`
        (the quote of its first citation); a refusal gives `"answerable": false`. A reviewer
        keeps rows whose verdict is "up" as they are and corrects the others.
        """
        row: dict[str, Any] = {"id": f"feedback-{self.id}", "question": self.question}
        if self.answerable:
            row["answers"] = [self.short_answer] if self.short_answer else []
            cited = [c for c in self.citations if c.get("quote")]
            if cited:
                row["evidence"] = min(cited, key=lambda c: c.get("n", 0))["quote"]
        else:
            row["answerable"] = False
        row.update({
            "verdict": self.verdict, "comment": self.comment, "history": self.history,
            "answer": self.answer, "short_answer": self.short_answer,
            "confidence": self.confidence, "citations": self.citations, "sources": self.sources,
            "index_version": self.index_version, "created_at": self.created_at,
        })
        return row


class FeedbackStore:
    """The feedback database at `<data_dir>/feedback.sqlite3`, created on first use.

    A connection per call (waitress serves from several threads); WAL so an export never blocks
    a reader's verdict; each write commits before it returns, so a restart loses nothing.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DATABASE_NAME
        self._ready = False
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                with self._lock:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with closing(sqlite3.connect(self.path, timeout=10)) as db:
                        db.execute("PRAGMA journal_mode=WAL")
                        version = db.execute("PRAGMA user_version").fetchone()[0]
                        if version not in (0, SCHEMA_VERSION):
                            raise FeedbackError(
                                f"{self.path} has feedback schema version {version}; this "
                                f"version of qa-service reads version {SCHEMA_VERSION}")
                        db.executescript(_SCHEMA)
                        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                        db.commit()
                    self._ready = True
            with closing(sqlite3.connect(self.path, timeout=10)) as db:
                db.row_factory = sqlite3.Row
                with db:  # commits on success, rolls back on error
                    yield db
        except sqlite3.Error as exc:
            raise FeedbackError(f"the feedback database {self.path} failed: {exc}") from None
        except OSError as exc:
            raise FeedbackError(f"cannot open the feedback database {self.path}: {exc}") from None

    def add(self, record: dict[str, Any], now: datetime | None = None) -> Feedback:
        """Stores one verdict (fields as `Feedback` has them, without id and time)."""
        if record["verdict"] not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {record['verdict']!r}")
        created = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        values = {
            "created_at": created, "verdict": record["verdict"],
            "comment": record.get("comment") or "", "question": record["question"],
            "history": json.dumps(record.get("history") or [], ensure_ascii=False),
            "answer": record["answer"], "short_answer": record.get("short_answer"),
            "answerable": int(bool(record["answerable"])),
            "confidence": record.get("confidence"),
            "citations": json.dumps(record.get("citations") or [], ensure_ascii=False),
            "sources": (None if record.get("sources") is None
                        else json.dumps(record["sources"], ensure_ascii=False)),
            "index_version": record["index_version"],
        }
        columns = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        with self._connect() as db:
            cursor = db.execute(f"INSERT INTO feedback ({columns}) VALUES ({marks})", values)
            row_id = cursor.lastrowid
        return self.get(int(row_id or 0))

    def get(self, row_id: int) -> Feedback:
        with self._connect() as db:
            row = db.execute("SELECT * FROM feedback WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise KeyError(row_id)
        return _feedback(row)

    def all(self) -> list[Feedback]:
        """Every verdict, oldest first. An absent database has none (and is not created)."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            return [_feedback(row) for row in db.execute("SELECT * FROM feedback ORDER BY id")]

    def export(self, fmt: str = "jsonl") -> str:
        """All verdicts as JSON lines in the gold format, or as CSV (one column per field)."""
        rows = [f.gold() for f in self.all()]
        if fmt == "jsonl":
            return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({
                    "id": row["id"], "created_at": row["created_at"], "verdict": row["verdict"],
                    "comment": row["comment"], "question": row["question"],
                    "answer": row["answer"], "short_answer": row["short_answer"] or "",
                    "answerable": str(row.get("answerable", True)).lower(),
                    "confidence": "" if row["confidence"] is None else row["confidence"],
                    "index_version": row["index_version"],
                    "sources": ";".join(row["sources"] or []),
                    "evidence": row.get("evidence", ""),
                    "history": json.dumps(row["history"], ensure_ascii=False),
                })
            return out.getvalue()
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")


def _feedback(row: sqlite3.Row) -> Feedback:
    return Feedback(
        id=row["id"], created_at=row["created_at"], verdict=row["verdict"],
        comment=row["comment"], question=row["question"], history=json.loads(row["history"]),
        answer=row["answer"], short_answer=row["short_answer"],
        answerable=bool(row["answerable"]), confidence=row["confidence"],
        citations=json.loads(row["citations"]),
        sources=None if row["sources"] is None else json.loads(row["sources"]),
        index_version=row["index_version"],
    )
