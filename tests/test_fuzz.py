"""Whatever a client sends to /api/answer, the answer is JSON: 200, or a 4xx that says why."""

from __future__ import annotations

import json

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
