from __future__ import annotations

import json
import re

import pytest

from qa_service.embedding import HashingEmbedder
from qa_service.schemas import AnswerResponse, Health, Source, SourceDetail
from qa_service.service import QAService
from qa_service.web import create_app

from .conftest import SOURCES


def _is_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_answer(client):
    response = client.post("/api/answer", json={
        "question": "How many Su-27SK fighters were to be produced in China under the 1996 "
                    "license?"})
    assert response.status_code == 200
    body = AnswerResponse.model_validate(response.get_json())
    assert body.short_answer == "200"
    assert body.citations[0].n == 1 and "[1]" in body.answer


def test_answer_with_history_sources_and_top_k(client):
    response = client.post("/api/answer", json={
        "question": "What was it worth?",
        "history": [{"question": "What did the 1996 license contract cover?",
                     "answer": "It covered production of 200 Su-27SK fighters [1]."}],
        "top_k": 3,
        "sources": ["kashin-military-technical-cooperation.txt"],
    })
    assert response.status_code == 200
    assert "2.2–2.5 billion" in response.get_json()["answer"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not valid UTF-8 JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "question: required"),
        ('{"question": "   "}', "question: required"),
        ('{"question": 42}', "question: Input should be a valid string"),
        (json.dumps({"question": "x" * 1001}), "question: String should have at most 1000"),
        ('{"question": "ok?", "top_k": 0}', "top_k: Input should be greater than or equal to 1"),
        ('{"question": "ok?", "top_k": "5"}', "top_k: Input should be a valid integer"),
        ('{"question": "ok?", "history": "none"}', "history: Input should be a valid list"),
        (json.dumps({"question": "ok?", "history": [{"question": "q", "answer": "a"}] * 21}),
         "history: List should have at most 20 items"),
        ('{"question": "ok?", "history": [{"q": 1}]}', "history.0.question: Field required"),
        ('{"question": "ok?", "sources": ["nope.txt"]}', "unknown source id(s): nope.txt"),
        ('{"question": "ok?", "sources": "all"}', "sources: Input should be a valid list"),
        ('{"question": "ok?", "colour": "red"}', "colour: unknown field"),
    ],
)
def test_answer_bad_requests(client, body, message):
    response = client.post("/api/answer", data=body, content_type="application/json")
    error = _is_error(response, 400, "bad_request")
    assert message in error["message"]


def test_history_may_carry_whole_earlier_responses(client):
    first = client.post("/api/answer", json={"question": "What did the 1996 license contract "
                                                         "cover?"}).get_json()
    response = client.post("/api/answer", json={"question": "What was it worth?",
                                                 "history": [first]})
    assert response.status_code == 200
    assert "2.2–2.5 billion" in response.get_json()["answer"]


def test_answer_body_too_large(client):
    big = json.dumps({"question": "x", "history": [{"question": "q" * 1000}] * 70})
    _is_error(client.post("/api/answer", data=big, content_type="application/json"),
              413, "too_large")


def test_answer_before_any_index_is_503(tmp_path):
    from qa_service.config import Settings

    settings = Settings(sources_dir=tmp_path, index_dir=tmp_path / "index")
    app = create_app(settings, QAService(settings, embedder=HashingEmbedder()))
    error = _is_error(app.test_client().post("/api/answer", json={"question": "hi?"}),
                      503, "index_not_ready")
    assert "qa-service build" in error["message"]
    _is_error(app.test_client().get("/healthz"), 503, "index_not_ready")


def test_sources(client):
    response = client.get("/api/sources")
    assert response.status_code == 200
    sources = [Source.model_validate(s) for s in response.get_json()]
    by_id = {s.source: s for s in sources}
    assert by_id["csis-china-russia-relations.md"].author == "CSIS China Power Team"
    assert by_id["csis-china-russia-relations.md"].date == "2022-06-29"
    assert all(s.chunks > 0 for s in sources)


def test_source_text_is_what_offsets_point_into(client):
    answer = client.post("/api/answer", json={"question": "Which engine does the J-10 use?"})
    citation = answer.get_json()["citations"][0]
    response = client.get(f"/api/sources/{citation['source']}")
    detail = SourceDetail.model_validate(response.get_json())
    assert detail.text[citation["start"]:citation["end"]] == citation["quote"]


@pytest.mark.parametrize("path", [
    "/api/sources/nope.txt", "/api/sources/..%2Fpyproject.toml", "/api/sources/%2Fetc%2Fpasswd",
    "/api/sources/../../etc/passwd",
])
def test_unknown_or_escaping_source_is_404(client, path):
    _is_error(client.get(path), 404, "not_found")


def test_rebuild_is_off_without_a_token(client):
    error = _is_error(client.post("/api/index/rebuild"), 403, "forbidden")
    assert "QA_ADMIN_TOKEN" in error["message"]


@pytest.fixture
def admin_app(fake_settings):
    from dataclasses import replace

    settings = replace(fake_settings, admin_token="s3cret")
    service = QAService(settings, embedder=HashingEmbedder())
    service.build()
    return create_app(settings, service)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "s3cret", "Basic s3cret"])
def test_rebuild_wrong_token_is_401(admin_app, header):
    headers = {"Authorization": header} if header else {}
    _is_error(admin_app.test_client().post("/api/index/rebuild", headers=headers),
              401, "unauthorized")


def test_rebuild_while_one_runs_is_409(admin_app):
    service = admin_app.extensions["qa_service"]
    with service.store.build_lock():
        response = admin_app.test_client().post(
            "/api/index/rebuild", headers={"Authorization": "Bearer s3cret"})
    _is_error(response, 409, "rebuild_running")


def test_rebuild_reports_and_swaps(admin_app):
    client = admin_app.test_client()
    before = client.get("/healthz").get_json()["index"]["version"]
    response = client.post("/api/index/rebuild", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    report = response.get_json()
    for key in ("added", "changed", "removed", "unchanged", "chunks", "embedded", "took_ms"):
        assert key in report
    # Nothing changed: nothing is embedded or written, and the build in service stands.
    assert report["unchanged"] == 2 and report["embedded"] == 0
    assert report["build_id"] == before
    settings = admin_app.extensions["qa_settings"]
    with (settings.sources_dir / "alpha.txt").open("a") as handle:
        handle.write("The Alpha treaty was renewed in 2011.\n")
    report = client.post("/api/index/rebuild",
                         headers={"Authorization": "Bearer s3cret"}).get_json()
    assert report["changed"] == 1 and report["unchanged"] == 1 and report["embedded"] >= 1
    after = client.get("/healthz").get_json()["index"]["version"]
    assert after == report["build_id"] != before


def test_healthz(client):
    body = Health.model_validate(client.get("/healthz").get_json())
    assert body.status == "ok" and body.index.chunks > 0
    assert body.index.sources == len(list(SOURCES.iterdir()))


def test_openapi_describes_every_route(client, app):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    rules = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules()
             if r.endpoint != "static"}
    assert rules == set(doc["paths"])
    request_schema = doc["components"]["schemas"]["AnswerRequest"]
    assert request_schema["properties"]["question"]["maxLength"] == 1000


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/nowhere", 404, "not_found"),
    ("get", "/api/answer", 405, "method_not_allowed"),
    ("delete", "/api/sources", 405, "method_not_allowed"),
])
def test_other_http_errors_are_json(client, method, path, status, code):
    _is_error(getattr(client, method)(path), status, code)


def test_unexpected_failure_is_json_without_a_trace(app, client, monkeypatch):
    service = app.extensions["qa_service"]

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "ask", boom)
    response = client.post("/api/answer", json={"question": "hi?"})
    error = _is_error(response, 500, "internal_error")
    assert "secret" not in error["message"] and "Traceback" not in response.get_data(as_text=True)


def test_page_is_served_with_local_assets_only(client):
    html = client.get("/").get_data(as_text=True)
    assert "<textarea" in html and "/static/app.js" in html
    assert "http://" not in html and "https://" not in html
    assert client.get("/static/app.js").status_code == 200


def test_page_gets_the_request_limits_from_the_one_definition(client):
    from html import unescape

    from qa_service.config import LIMITS

    html = client.get("/").get_data(as_text=True)
    found = re.search(r"data-limits='([^']*)'", html)
    assert found and json.loads(unescape(found.group(1))) == LIMITS.as_dict()
    # No maxlength on the question box: it cut pasted text silently; the page says what is over.
    assert 'id="question"' in html and "maxlength" not in html.split('id="question"')[1].split(">")[0]


def test_examples_come_from_the_index_and_are_answered(client):
    examples = client.get("/api/examples").get_json()
    titles = {s["title"]: s["source"] for s in client.get("/api/sources").get_json()}
    assert 1 <= len(examples) <= 3
    for question in examples:
        [title] = [t for t in titles if f"“{t}”" in question]
        answer = client.post("/api/answer", json={"question": question}).get_json()
        assert answer["answerable"] and answer["confidence"] >= 0.4
        assert {c["source"] for c in answer["citations"]} == {titles[title]}


def test_examples_over_other_sources_name_those(built_fake):
    from qa_service.web import example_questions

    # The tiny sources of conftest: nothing of the project's documents leaks into the examples.
    assert example_questions(built_fake) == ["What does “Alpha Report” say?"]


def test_a_link_to_a_file_outside_the_sources_is_never_published(fake_settings):
    (fake_settings.sources_dir / "passwd.txt").symlink_to("/etc/passwd")
    service = QAService(fake_settings, embedder=HashingEmbedder())
    report = service.build()
    assert [s.source for s in report.skipped] == ["passwd.txt"]
    client = create_app(fake_settings, service).test_client()
    _is_error(client.get("/api/sources/passwd.txt"), 404, "not_found")
    assert "passwd.txt" not in {s["source"] for s in client.get("/api/sources").get_json()}


@pytest.mark.parametrize("body", [
    "[" * 10_000 + "]" * 10_000,
    '{"question": "ok?", "history": ' + "[" * 40 + "]" * 40 + "}",
    '{"question": "ok?", "top_k": ' + "9" * 5000 + "}",
    '{"question": "ok?", "top_k": NaN}',
    '{"question": "ok?", "sources": ["\\udc00x"]}',
    '{"question": "\\ud800"}',
])
def test_hostile_json_is_a_400_not_a_500(client, body):
    response = client.post("/api/answer", data=body, content_type="application/json")
    _is_error(response, 400, "bad_request")


def test_brackets_inside_strings_do_not_count_as_nesting(client):
    response = client.post("/api/answer", json={"question": "What is [[[[" * 10 + "?"})
    assert response.status_code == 200


def test_405_names_the_allowed_methods(client):
    response = client.get("/api/answer")
    _is_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "OPTIONS, POST"


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/sources/nope.txt", "/static/app.js"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_the_page_works_under_the_strict_csp(client):
    # No inline script, style or event handler in the page, no inline style set by the script:
    # the CSP allows neither.
    html = client.get("/").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js">']
    assert "<style" not in html and not re.search(r"<[^>]*\s(style|on[a-z]+)=", html)
    script = client.get("/static/app.js").get_data(as_text=True)
    assert not re.search(r"\.style\b|setAttribute\(\s*[\"']style|cssText|eval\(|new Function",
                         script)
    assert "innerHTML" not in script and "javascript:" not in html


def test_healthz_says_degraded_while_the_last_good_index_serves(admin_app):
    client = admin_app.test_client()
    first = client.get("/healthz").get_json()["index"]["version"]
    service = admin_app.extensions["qa_service"]
    service.store.pointer.write_bytes(b"\x00\x01 not a build id")
    service.settle()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = Health.model_validate(response.get_json())
    assert body.status == "degraded" and body.index.version == first
    assert "CURRENT" in body.reason and "qa-service build" in body.reason
    answer = client.post("/api/answer", json={"question": "When was the Alpha treaty signed?"})
    assert answer.status_code == 200 and answer.get_json()["index_version"] == first


def test_a_citation_verifies_against_its_own_version_after_the_source_changed(admin_app):
    client = admin_app.test_client()
    auth = {"Authorization": "Bearer s3cret"}
    settings = admin_app.extensions["qa_settings"]
    result = client.post("/api/answer", json={"question": "When was the Alpha treaty signed?"})
    first = result.get_json()
    citation = first["citations"][0]
    path = settings.sources_dir / citation["source"]
    path.write_text(path.read_text().replace("---\n\n", "---\nA new opening line was added to "
                                                        "this report today.\n\n", 1)
                    .replace("The Alpha", "Later on, the Alpha"))
    assert client.post("/api/index/rebuild", headers=auth).status_code == 200
    url = f"/api/sources/{citation['source']}"
    now = client.get(url).get_json()
    assert now["text"][citation["start"]:citation["end"]] != citation["quote"]
    then = SourceDetail.model_validate(
        client.get(f"{url}?version={first['index_version']}").get_json())
    assert then.index_version == first["index_version"]
    assert then.text[citation["start"]:citation["end"]] == citation["quote"]
    # Pruned after more rebuilds (QA_KEEP_BUILDS=2): a 404 that says what to do.
    for _ in range(2):
        path.write_text(path.read_text() + "\nOne more sentence for a new build.\n")
        assert client.post("/api/index/rebuild", headers=auth).status_code == 200
    error = _is_error(client.get(f"{url}?version={first['index_version']}"), 404, "not_found")
    assert "not kept" in error["message"] and "without ?version=" in error["message"]


@pytest.mark.parametrize("version", ["nope", "../../etc", "20990101T000000-0000"])
def test_an_unknown_version_is_a_404(client, version):
    error = _is_error(client.get(f"/api/sources/csis-china-russia-relations.md?version={version}"),
                      404, "not_found")
    assert "QA_KEEP_BUILDS" in error["message"]
