"""Whatever a client sends to /api/answer, the answer is JSON: 200, or a 4xx that says why."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "question": st.text(max_size=60) | json_values,
        "history": st.lists(st.fixed_dictionaries(
            {"question": st.text(max_size=30)}, optional={"answer": st.text(max_size=30)}),
            max_size=3) | json_values,
        "top_k": st.integers(-5, 30) | json_values,
        "sources": st.lists(st.sampled_from(["csis-china-russia-relations.md", "x.txt"]),
                            max_size=2) | json_values,
    },
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=fields | json_values)
def test_any_body_gets_json_and_never_a_5xx(client, body):
    response = client.post("/api/answer", data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    data = response.get_json()
    if response.status_code == 200:
        assert data["answer"] and isinstance(data["citations"], list)
    else:
        assert data["error"]["code"] == "bad_request" and data["error"]["message"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_json(client, raw):
    response = client.post("/api/answer", data=raw, content_type="application/json")
    assert response.status_code in (200, 400)
    assert response.is_json


# What broke before: deep nesting, numbers of thousands of digits, lone surrogates, NaN.
_surrogate_text = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
                          | st.characters(), max_size=20)
hostile_bodies = st.one_of(
    st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 5_000).map(lambda n: '{"question": "q?", "history": ' + "[" * n + "]" * n + "}"),
    st.text("0123456789", min_size=1, max_size=6_000).map(
        lambda d: '{"question": "q?", "top_k": ' + d + "}"),
    st.fixed_dictionaries({"question": _surrogate_text}, optional={
        "sources": st.lists(_surrogate_text, max_size=3),
        "history": st.lists(st.fixed_dictionaries({"question": _surrogate_text}), max_size=2),
    }).map(json.dumps),  # ensure_ascii: lone surrogates travel as \udxxx escapes
    st.sampled_from(["NaN", "Infinity", '{"question": -Infinity}', '{"top_k": 1e999999}']),
)


@pytest.fixture
def fake_client(built_fake):
    """The API over the fake embedder: parsing and validation are what is under test here."""
    from qa_service.web import create_app

    return create_app(built_fake.settings, built_fake).test_client()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=hostile_bodies)
def test_hostile_json_gets_a_json_4xx_never_a_5xx(fake_client, body):
    response = fake_client.post("/api/answer", data=body, content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.is_json and set(response.get_json()) <= {"error", "question", "answer",
                                                             "short_answer", "answerable",
                                                             "confidence", "citations",
                                                             "index_version", "took_ms"}
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert set(error) == {"code", "message"} and error["message"]
