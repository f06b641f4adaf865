"""The OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions`.

Chat clients that speak the OpenAI chat-completions protocol (the `openai` SDKs, Open WebUI,
LibreChat, editor plugins) talk to the service through these routes unchanged. A request is
translated into one `QAService.ask()` call:

- the last message must be the user's: it is the question;
- earlier user and assistant messages become the `history` (the last `LIMITS.history_turns`
  turns; a chat client always sends the whole conversation, so older turns are dropped rather
  than refused); the reference list this module appends to a reply is cut off again;
- system and developer messages are ignored: answers come only from the indexed sources, and
  no instruction can change that;
- sampling parameters (temperature, top_p, max_tokens, seed, stop, penalties, user, ...) are
  accepted and ignored: the answer is quoted, not generated. What cannot be honoured (n > 1,
  logprobs, a JSON response format, images) is a 400 saying so.
- `sources` and `top_k` may be sent as extra fields (`extra_body` in the SDK), as in
  `POST /api/answer`.

The reply's content is the cited answer with its `[n]` markers and a short reference list;
the API's full response (citations with offsets, short answer, answerable, confidence) travels
in the extra field `qa`. `usage` is zeroed: no language model runs, so there are no tokens to
count. Errors on these routes use OpenAI's error shape; the rest of the API keeps the
contract's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from pydantic import ValidationError

from .bodies import printable, read_json
from .config import LIMITS
from .errors import QAError
from .schemas import ChatCompletionRequest, ChatMessage

MODEL_ID = "qa-service"
MODEL_CREATED = 1_763_769_600  # 2025-11-22: when the model id was first published; fixed
REFERENCES_HEADING = "Sources:"
NEAREST_HEADING = "Nearest passages (they do not answer the question):"
EXAMPLE_BODY = '{"model": "qa-service", "messages": [{"role": "user", "content": "..."}]}'
QUOTE_CHARS = 240  # a reference-list quote past this is cut at a word; `qa` has the whole one

chat = Blueprint("chat", __name__)


class ChatError(Exception):
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")


def is_chat_path(path: str) -> bool:
    """Whether `path` is one of the OpenAI-style routes, whose errors take OpenAI's shape."""
    return path == "/v1" or path.startswith("/v1/")


def error_response(exc: ChatError) -> Response:
    response = jsonify({"error": {"message": printable(exc.message), "type": exc.kind,
                                  "param": exc.param, "code": exc.code}})
    response.status_code = exc.status
    return response


def from_qa_error(exc: QAError) -> ChatError:
    """A service error (index not ready, unknown source, ...) in OpenAI's shape."""
    return ChatError(exc.status, exc.message, code=exc.code)


def _model_record() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": MODEL_CREATED, "owned_by": "qa-service"}


@chat.get("/v1/models")
def models():
    return jsonify({"object": "list", "data": [_model_record()]})


@chat.get("/v1/models/<path:model>")
def model(model: str):
    if model != MODEL_ID:
        raise ChatError(404, f"the model {model!r} does not exist; GET /v1/models lists "
                        f"the one model, {MODEL_ID!r}", param="model", code="model_not_found")
    return jsonify(_model_record())


@chat.post("/v1/chat/completions")
def chat_completions():
    req = _parse(read_json(EXAMPLE_BODY))
    question, history = conversation(req.messages)
    service = current_app.extensions["qa_service"]
    result = service.ask(question, history=history, top_k=req.top_k, sources=req.sources)
    content = reply_content(result)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = _stream(completion_id, created, req.model, content, result, include_usage)
        return Response(events, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return jsonify({
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "system_fingerprint": result["index_version"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": _usage(),
        "qa": result,
    })


def _parse(body: Any) -> ChatCompletionRequest:
    if not isinstance(body, dict):
        raise ChatError(400, 'the body must be a JSON object with "model" and "messages"')
    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ChatError(400, f"{where or 'body'}: {first['msg']}",
                        param=str(first["loc"][0]) if first["loc"] else None) from None
    if req.model != MODEL_ID:
        raise ChatError(404, f"the model {req.model!r} does not exist; use {MODEL_ID!r} "
                        "(GET /v1/models)", param="model", code="model_not_found")
    if req.n not in (None, 1):
        raise ChatError(400, "n must be 1: the sources give one answer", param="n")
    if req.logprobs:
        raise ChatError(400, "logprobs are not available: the answer is quoted from the "
                        "sources, not sampled", param="logprobs")
    if req.response_format is not None and req.response_format.type != "text":
        raise ChatError(400, "only response_format {\"type\": \"text\"} is available; the "
                        "structured answer is in the reply's `qa` field",
                        param="response_format")
    return req


def conversation(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, the user's) and the history of earlier turns."""
    said = [(i, m) for i, m in enumerate(messages) if m.role in ("user", "assistant")]
    if messages[-1].role != "user":
        raise ChatError(400, "the last message must be the user's question (role \"user\")",
                        param="messages")
    question = _text(messages[-1], len(messages) - 1).strip()
    if not question:
        raise ChatError(400, "the last user message is empty: ask something about the sources",
                        param="messages")
    if len(question) > LIMITS.question_chars:
        raise ChatError(400, f"the question is {len(question)} characters long; the limit is "
                        f"{LIMITS.question_chars}", param="messages")
    turns: list[dict[str, str]] = []
    for position, message in said[:-1]:
        text = _text(message, position)
        if message.role == "user":
            turns.append({"question": text[:LIMITS.question_chars], "answer": ""})
        elif turns and not turns[-1]["answer"]:
            turns[-1]["answer"] = strip_references(text)[:LIMITS.answer_chars]
    return question, turns[-LIMITS.history_turns:]


def _text(message: ChatMessage, position: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise ChatError(400, f"messages.{position}.content: only text parts are read, got "
                            f"{part.type!r}", param="messages")
        parts.append(part.text)
    return "\n".join(parts)


def strip_references(reply: str) -> str:
    """An earlier reply of ours without the reference list this module appended to it."""
    for heading in (REFERENCES_HEADING, NEAREST_HEADING):
        cut = reply.find(f"\n\n{heading}\n")
        if cut >= 0:
            reply = reply[:cut]
    return reply.strip()


def reply_content(result: dict[str, Any]) -> str:
    """The answer with its markers, then a reference list a reader can check: one line per
    citation with its title, source id and quote (cut at a word past `QUOTE_CHARS`)."""
    citations = result["citations"]
    if not citations:
        return result["answer"]
    heading = REFERENCES_HEADING if result["answerable"] else NEAREST_HEADING
    lines = [result["answer"], "", heading]
    for c in citations:
        lines.append(f"[{c['n']}] {c['title']} ({c['source']}): “{_shorten(c['quote'])}”")
    return "\n".join(lines)


def _shorten(quote: str) -> str:
    quote = " ".join(quote.split())
    if len(quote) <= QUOTE_CHARS:
        return quote
    cut = quote.rfind(" ", 0, QUOTE_CHARS)
    return quote[:cut if cut > 0 else QUOTE_CHARS].rstrip(",;:") + " …"


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _stream(completion_id: str, created: int, model_name: str, content: str,
            result: dict[str, Any], include_usage: bool) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format: the role, the content in pieces (a line or
    sentence at a time), a last chunk with the finish reason and `qa`, then `[DONE]`."""

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": model_name, "system_fingerprint": result["index_version"],
                "choices": choices, **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                     **extra)

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(content):
        yield chunk({"content": piece})
    yield chunk({}, "stop", qa=result)
    if include_usage:
        yield event([], usage=_usage())
    yield "data: [DONE]\n\n"


def _pieces(content: str) -> Iterator[str]:
    """The content cut after each sentence end or line break, pieces joined back exactly."""
    start = 0
    for i, ch in enumerate(content):
        if ch == "\n" or (ch in ".?!" and content[i + 1:i + 2] == " "):
            yield content[start:i + 1]
            start = i + 1
    if start < len(content):
        yield content[start:]
