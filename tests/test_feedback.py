"""Feedback: the SQLite store, POST /api/feedback, `qa-service feedback export`, and that the
database survives a restart and is never served."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sqlite3
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa_service.cli import main
from qa_service.config import LIMITS
from qa_service.feedback import DATABASE_NAME, FeedbackError, FeedbackStore
from qa_service.web import create_app

CITATION = {"n": 1, "source": "alpha.txt", "title": "Alpha Report",
            "quote": "The Alpha treaty was signed on March 3, 2001.", "start": 0, "end": 45}


def _record(**changes) -> dict:
    record = {
        "verdict": "up", "comment": "", "question": "When was the Alpha treaty signed?",
        "history": [{"question": "What is Alpha?", "answer": "A report [1]."}],
        "answer": "The Alpha treaty was signed on March 3, 2001 [1].",
        "short_answer": "March 3, 2001", "answerable": True, "confidence": 0.81,
        "citations": [CITATION], "sources": None, "index_version": "20261122T000000-abcd",
    }
    record.update(changes)
    return record


# -- the store ---------------------------------------------------------------------------------

def test_store_keeps_every_field(tmp_path: Path):
    store = FeedbackStore(tmp_path / "data")
    assert store.all() == [] and not store.path.exists()  # reading creates nothing
    stored = store.add(_record(comment="right", sources=["alpha.txt"]),
                       now=datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    assert stored.id == 1 and stored.created_at == "2026-11-22T12:00:00+00:00"
    again = FeedbackStore(tmp_path / "data").all()  # a new object on the same folder
    assert again == [stored]
    assert again[0].history == _record()["history"] and again[0].citations == [CITATION]
    assert again[0].sources == ["alpha.txt"] and again[0].comment == "right"
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_gold_rows_for_answers_and_refusals(tmp_path: Path):
    store = FeedbackStore(tmp_path)
    store.add(_record())
    store.add(_record(verdict="down", answerable=False, short_answer=None,
                      answer="The sources do not say.", comment="it is in beta.md"))
    store.add(_record(short_answer=None))
    rows = [json.loads(line) for line in store.export("jsonl").splitlines()]
    assert rows[0]["id"] == "feedback-1" and rows[0]["answers"] == ["March 3, 2001"]
    assert rows[0]["evidence"] == CITATION["quote"] and rows[0]["verdict"] == "up"
    assert rows[1]["answerable"] is False and "answers" not in rows[1]
    assert rows[1]["verdict"] == "down" and rows[1]["comment"] == "it is in beta.md"
    assert rows[2]["answers"] == []  # no short answer: the reviewer writes the answers
    for row in rows:
        assert {"question", "history", "answer", "citations", "index_version", "created_at"} <= set(row)


def test_csv_export(tmp_path: Path):
    store = FeedbackStore(tmp_path)
    store.add(_record(comment='line one\n"quoted", line two', sources=["alpha.txt", "beta.md"]))
    rows = list(csv.DictReader(io.StringIO(store.export("csv"))))
    assert len(rows) == 1
    assert rows[0]["comment"] == 'line one\n"quoted", line two'
    assert rows[0]["sources"] == "alpha.txt;beta.md" and rows[0]["answerable"] == "true"
    assert json.loads(rows[0]["history"]) == _record()["history"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.export("xml"), "unknown export format"),
    (lambda s: s.add(_record(verdict="meh")), "verdict must be one of"),
])
def test_store_refuses_bad_calls(tmp_path: Path, call, message):
    with pytest.raises(ValueError, match=message):
        call(FeedbackStore(tmp_path))


def test_a_newer_database_is_refused_not_overwritten(tmp_path: Path):
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        db.execute("PRAGMA user_version=7")
    with pytest.raises(FeedbackError, match="schema version 7"):
        FeedbackStore(tmp_path).add(_record())


# -- the route ---------------------------------------------------------------------------------

@pytest.fixture
def feedback_app(built_fake, tmp_path: Path):
    settings = dataclasses.replace(built_fake.settings, data_dir=tmp_path / "data")
    return create_app(settings, built_fake)


def test_post_feedback_is_stored(feedback_app, tmp_path: Path):
    client = feedback_app.test_client()
    response = client.post("/api/feedback", json=_record(comment="good"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] == 1 and body["created_at"]
    [stored] = FeedbackStore(tmp_path / "data").all()
    assert stored.comment == "good" and stored.citations == [CITATION]


@pytest.mark.parametrize(("change", "expected"), [
    ({"verdict": "maybe"}, "verdict"),
    ({"verdict": None}, "verdict"),
    ({"question": "   "}, "question"),
    ({"question": "x" * (LIMITS.question_chars + 1)}, "question"),
    ({"comment": "x" * (LIMITS.comment_chars + 1)}, "comment"),
    ({"answer": ""}, "answer"),
    ({"answerable": "yes"}, "answerable"),
    ({"confidence": 1.5}, "confidence"),
    ({"history": [{"question": "q"}] * (LIMITS.history_turns + 1)}, "history"),
    ({"citations": [{**CITATION, "start": -1}]}, "citations.0.start"),
    ({"index_version": ""}, "index_version"),
    ({"extra": 1}, "unknown field"),
])
def test_bad_feedback_is_a_400(feedback_app, change, expected):
    response = feedback_app.test_client().post("/api/feedback", json=_record(**change))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and expected in error["message"]


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json", 400, "bad_request"),
    (b"[1, 2]", 400, "bad_request"),
    (b'{"comment": "' + b"x" * LIMITS.body_bytes + b'"}', 413, "too_large"),
])
def test_feedback_body_errors(feedback_app, body, status, code):
    response = feedback_app.test_client().post("/api/feedback", data=body,
                                               content_type="application/json")
    assert response.status_code == status and response.get_json()["error"]["code"] == code


def test_feedback_route_is_in_the_openapi_document(feedback_app):
    doc = feedback_app.test_client().get("/openapi.json").get_json()
    post = doc["paths"]["/api/feedback"]["post"]
    assert set(post["responses"]) >= {"201", "400", "413"}
    schema = doc["components"]["schemas"]["FeedbackRequest"]
    assert {"verdict", "question", "answer", "answerable", "index_version"} <= set(schema["required"])


def test_the_database_is_never_served(feedback_app, tmp_path: Path):
    client = feedback_app.test_client()
    assert client.post("/api/feedback", json=_record()).status_code == 201
    secret = (tmp_path / "data" / DATABASE_NAME).read_bytes()[:16]
    assert secret.startswith(b"SQLite format 3")
    probes = [f"/{DATABASE_NAME}", f"/data/{DATABASE_NAME}", f"/static/{DATABASE_NAME}",
              f"/static/../data/{DATABASE_NAME}", f"/static/..%2Fdata%2F{DATABASE_NAME}",
              f"/api/sources/{DATABASE_NAME}", f"/api/sources/..%2Fdata%2F{DATABASE_NAME}",
              f"/api/sources/../data/{DATABASE_NAME}", "/api/feedback", "/data/"]
    for path in probes:
        response = client.get(path)
        assert response.status_code in (404, 405), path
        assert b"SQLite format" not in response.get_data(), path


# -- a real server restarted on the same data folder, then the CLI export -----------------------

def _serve(app):
    # werkzeug's server, because it stops cleanly from another thread (shutdown()).
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _post(url: str, record: dict) -> int:
    request = urllib.request.Request(url + "/api/feedback", data=json.dumps(record).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_feedback_survives_a_server_restart(built_fake, tmp_path: Path, monkeypatch):
    settings = dataclasses.replace(built_fake.settings, data_dir=tmp_path / "data")
    server, thread = _serve(create_app(settings, built_fake))
    assert _post(f"http://127.0.0.1:{server.server_port}", _record(comment="before")) == 201
    _stop(server, thread)

    server, thread = _serve(create_app(settings, built_fake))  # a new app on the same folder
    assert _post(f"http://127.0.0.1:{server.server_port}",
                 _record(verdict="down", comment="after")) == 201
    _stop(server, thread)

    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    result = runner.invoke(main, ["feedback", "export"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["verdict"], r["comment"]) for r in rows] == [("up", "before"), ("down", "after")]

    result = runner.invoke(main, ["feedback", "export", "--format", "csv",
                                  "--out", str(tmp_path / "f.csv")])
    assert result.exit_code == 0, result.output
    assert "2 verdicts written" in result.output
    assert len(list(csv.DictReader((tmp_path / "f.csv").open(encoding="utf-8")))) == 2


# -- whatever a client sends, the answer is JSON: 201 or a 400 that says why --------------------

def _fuzz_bodies():
    from hypothesis import strategies as st

    values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    good = _record()
    return st.dictionaries(
        st.sampled_from([*good, "extra"]),
        values | st.sampled_from([v for v in good.values() if v is not None]),
        max_size=len(good) + 1,
    ).map(lambda changes: {**good, **changes}) | values


def test_any_feedback_body_gets_json_and_never_a_5xx(feedback_app):
    from hypothesis import HealthCheck, given, settings

    client = feedback_app.test_client()

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=_fuzz_bodies())
    def check(body):
        response = client.post("/api/feedback", data=json.dumps(body),
                               content_type="application/json")
        assert response.status_code in (201, 400), response.get_data(as_text=True)
        assert response.is_json

    check()
