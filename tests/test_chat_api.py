"""The OpenAI-compatible routes: the official `openai` package, unchanged, as the client of a
real server on 127.0.0.1 serving the real index; the translation rules on their own; errors in
OpenAI's shape."""

from __future__ import annotations

import json

import pytest

from qa_service.chat_api import (
    MODEL_ID,
    NEAREST_HEADING,
    REFERENCES_HEADING,
    ChatError,
    _pieces,
    conversation,
    reply_content,
    strip_references,
)
from qa_service.config import LIMITS
from qa_service.embedding import HashingEmbedder
from qa_service.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ModelList,
    OpenAIError,
)
from qa_service.service import QAService
from qa_service.web import create_app

openai = pytest.importorskip("openai")

LICENCE = "What did the 1996 license contract cover?"


def _messages(*pairs: tuple[str, object]) -> list[ChatMessage]:
    return [ChatMessage.model_validate({"role": r, "content": c}) for r, c in pairs]


# -- translation rules -----------------------------------------------------------------------


def test_last_user_message_is_the_question_and_earlier_turns_the_history():
    question, history = conversation(_messages(
        ("system", "Answer briefly."),
        ("user", "First?"),
        ("assistant", f"One [1].\n\n{REFERENCES_HEADING}\n[1] T (a.txt): “One.”"),
        ("user", [{"type": "text", "text": "Second?"}]),
        ("user", "  Third?  "),
    ))
    assert question == "Third?"
    assert history == [{"question": "First?", "answer": "One [1]."},
                       {"question": "Second?", "answer": ""}]


def test_history_keeps_only_the_last_turns_a_request_may_carry():
    pairs: list[tuple[str, object]] = []
    for i in range(LIMITS.history_turns + 5):
        pairs += [("user", f"q{i}"), ("assistant", f"a{i}")]
    _, history = conversation(_messages(*pairs, ("user", "now?")))
    assert len(history) == LIMITS.history_turns
    assert history[-1] == {"question": f"q{LIMITS.history_turns + 4}",
                           "answer": f"a{LIMITS.history_turns + 4}"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("user", "Hi?"), ("assistant", "Hello.")], "last message must be the user's"),
        ([("system", "Be brief.")], "last message must be the user's"),
        ([("user", "   ")], "last user message is empty"),
        ([("user", "x" * (LIMITS.question_chars + 1))], "the limit is"),
        ([("user", [{"type": "image_url", "image_url": {"url": "data:"}}])],
         "only text parts are read"),
    ],
)
def test_conversations_without_a_question_are_refused(pairs, message):
    with pytest.raises(ChatError, match=message) as caught:
        conversation(_messages(*pairs))
    assert caught.value.status == 400 and caught.value.param == "messages"


def test_reply_lists_each_citation_and_strips_back_to_the_answer():
    citation = {"n": 1, "title": "Report", "source": "r.txt", "quote": "word " * 100}
    result = {"answer": "It was so [1].", "answerable": True, "citations": [citation]}
    content = reply_content(result)
    assert content.startswith("It was so [1].\n\nSources:\n[1] Report (r.txt): “word word")
    assert content.endswith(" …”") and len(content) < 320
    assert strip_references(content) == "It was so [1]."
    refusal = reply_content({**result, "answer": "The sources do not say.", "answerable": False})
    assert NEAREST_HEADING in refusal
    assert strip_references(refusal) == "The sources do not say."
    assert reply_content({"answer": "No.", "answerable": False, "citations": []}) == "No."


@pytest.mark.parametrize("text", ["One. Two? Three!\n\nSources:\n[1] T: “q.”", "", "No end"])
def test_streamed_pieces_join_back_exactly(text):
    assert "".join(_pieces(text)) == text


# -- errors in OpenAI's shape (Flask test client) --------------------------------------------


def _openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = OpenAIError.model_validate(response.get_json())
    return body.error.model_dump()


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi?"}]}, 404, "model",
         "does not exist"),
        ({"model": MODEL_ID}, 400, "messages", "Field required"),
        ({"model": MODEL_ID, "messages": []}, 400, "messages", "at least 1"),
        ({"model": MODEL_ID, "messages": "Hi?"}, 400, "messages", "valid list"),
        ({"model": MODEL_ID, "messages": [{"role": "user", "content": 7}]}, 400, "messages",
         "messages.0.content"),
        ({"model": MODEL_ID, "messages": [{"role": "wizard", "content": "Hi?"}]}, 400,
         "messages", "messages.0.role"),
        ({"model": 3, "messages": [{"role": "user", "content": "Hi?"}]}, 400, "model",
         "valid string"),
        ({"model": MODEL_ID, "stream": "yes", "messages": [{"role": "user", "content": "Hi?"}]},
         400, "stream", "valid boolean"),
        ({"model": MODEL_ID, "n": 2, "messages": [{"role": "user", "content": "Hi?"}]}, 400,
         "n", "n must be 1"),
        ({"model": MODEL_ID, "response_format": {"type": "json_object"},
          "messages": [{"role": "user", "content": "Hi?"}]}, 400, "response_format",
         "only response_format"),
        ({"model": MODEL_ID, "top_k": LIMITS.top_k + 1,
          "messages": [{"role": "user", "content": "Hi?"}]}, 400, "top_k", "less than or equal"),
        ({"model": MODEL_ID, "sources": ["nope.txt"],
          "messages": [{"role": "user", "content": "Hi?"}]}, 400, None, "unknown source id"),

    ],
)
def test_bad_requests_get_openai_errors(client, body, status, param, words):
    error = _openai_error(client.post("/v1/chat/completions", json=body), status)
    assert error["param"] == param and words in error["message"]
    assert error["type"] == "invalid_request_error"


def test_bodies_that_are_not_json_or_too_large(client):
    error = _openai_error(client.post("/v1/chat/completions", data=b"{not json",
                                      content_type="application/json"), 400)
    assert "not valid UTF-8 JSON" in error["message"]
    huge = json.dumps({"model": MODEL_ID, "messages": [
        {"role": "user", "content": "x" * (LIMITS.body_bytes + 10)}]})
    error = _openai_error(client.post("/v1/chat/completions", data=huge,
                                      content_type="application/json"), 413)
    assert "KiB" in error["message"]
    surrogate = b'{"model": "\\udc00", "messages": [{"role": "user", "content": "Hi?"}]}'
    error = _openai_error(client.post("/v1/chat/completions", data=surrogate,
                                      content_type="application/json"), 400)
    assert "lone surrogate" in error["message"]
    deep = b'{"model": "qa-service", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    error = _openai_error(client.post("/v1/chat/completions", data=deep,
                                      content_type="application/json"), 400)
    assert "nests deeper" in error["message"]


def test_routes_and_methods_that_do_not_exist_keep_openai_shape(client):
    assert _openai_error(client.get("/v1/chat/completions"), 405)["code"] == \
        "method_not_allowed"
    assert _openai_error(client.get("/v1/embeddings"), 404)["code"] == "not_found"
    assert _openai_error(client.get("/v1/models/gpt-4o"), 404)["code"] == "model_not_found"
    # The rest of the API keeps the contract's shape.
    assert set(client.get("/api/nothing").get_json()["error"]) == {"code", "message"}


def test_no_index_yet_is_503_in_openai_shape(tmp_path):
    from qa_service.config import Settings

    settings = Settings(sources_dir=tmp_path / "s", index_dir=tmp_path / "i")
    client = create_app(settings, QAService(settings, embedder=HashingEmbedder())).test_client()
    error = _openai_error(client.post("/v1/chat/completions", json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "Hi?"}]}), 503)
    assert error["type"] == "server_error" and "qa-service build" in error["message"]


def test_routes_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"/v1/models", "/v1/models/{model}", "/v1/chat/completions"} <= set(paths)


# -- the real openai package against a real server -------------------------------------------


@pytest.fixture(scope="module")
def llm(live_server):
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key="any key", max_retries=0,
                         timeout=60)


def test_models_lists_the_one_model(llm, live_server):
    assert [m.id for m in llm.models.list()] == [MODEL_ID]
    assert llm.models.retrieve(MODEL_ID).id == MODEL_ID


def test_openai_package_gets_a_cited_answer(llm, real_service):
    completion = llm.chat.completions.create(
        model=MODEL_ID, temperature=0.2, max_tokens=50,  # accepted, and meaningless here
        messages=[{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": LICENCE}])
    ChatCompletion.model_validate(completion.model_dump())
    content = completion.choices[0].message.content
    qa = completion.model_extra["qa"]
    assert qa["answerable"] and "Su-27SK" in content and "[1]" in content
    assert content.startswith(qa["answer"])
    for citation in qa["citations"]:
        text = real_service.get_source(citation["source"])["text"]
        assert text[citation["start"]:citation["end"]] == citation["quote"]
        assert f"[{citation['n']}] {citation['title']} ({citation['source']})" in content
    assert completion.system_fingerprint == qa["index_version"]
    assert completion.usage.total_tokens == 0


def test_openai_package_streams_the_same_answer(llm):
    messages = [{"role": "user", "content": LICENCE}]
    plain = llm.chat.completions.create(model=MODEL_ID, messages=messages)
    chunks = list(llm.chat.completions.create(
        model=MODEL_ID, messages=messages, stream=True, stream_options={"include_usage": True}))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finish) == 1
    assert finish[0].model_extra["qa"]["answer"] == plain.model_extra["qa"]["answer"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 0


def test_follow_up_is_resolved_from_the_messages(llm):
    first = llm.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": LICENCE}])
    follow_up = {"role": "user", "content": "What was it worth?"}
    answered = llm.chat.completions.create(model=MODEL_ID, messages=[
        {"role": "user", "content": LICENCE},
        {"role": "assistant", "content": first.choices[0].message.content},
        follow_up,
    ])
    qa = answered.model_extra["qa"]
    assert qa["answerable"] and "2.2–2.5 billion" in qa["answer"]
    alone = llm.chat.completions.create(model=MODEL_ID, messages=[follow_up])
    assert "2.2–2.5 billion" not in alone.model_extra["qa"]["answer"]


def test_refusal_is_a_normal_reply(llm):
    completion = llm.chat.completions.create(model=MODEL_ID, messages=[
        {"role": "user", "content": "What is the boiling point of mercury?"}])
    qa = completion.model_extra["qa"]
    assert completion.choices[0].finish_reason == "stop"
    assert not qa["answerable"] and qa["answer"].startswith("The sources do not")
    assert "[1]" not in qa["answer"]


def test_extra_body_limits_the_sources(llm, real_service):
    source = "kashin-military-technical-cooperation.txt"
    completion = llm.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": LICENCE}],
        extra_body={"sources": [source], "top_k": 3})
    assert {c["source"] for c in completion.model_extra["qa"]["citations"]} == {source}


def test_openai_package_raises_its_own_errors(llm):
    with pytest.raises(openai.NotFoundError) as missing:
        llm.chat.completions.create(model="gpt-4o",
                                    messages=[{"role": "user", "content": "Hi?"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="last message must be the user's"):
        llm.chat.completions.create(model=MODEL_ID,
                                    messages=[{"role": "assistant", "content": "Hello."}])
    with pytest.raises(openai.BadRequestError, match="messages.0.content"):
        llm.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": 5}])
    with pytest.raises(openai.APIStatusError) as huge:
        llm.chat.completions.create(model=MODEL_ID, messages=[
            {"role": "user", "content": "word " * LIMITS.body_bytes}])
    assert huge.value.status_code == 413
    with pytest.raises(openai.BadRequestError):  # a stream refused before it starts
        llm.chat.completions.create(model=MODEL_ID, stream=True,
                                    messages=[{"role": "user", "content": ""}])


def test_model_list_schema(client):
    ModelList.model_validate(client.get("/v1/models").get_json())
