"""Request and response schemas of the HTTP API (pydantic), and the OpenAPI document built
from them, so the validation and the published contract cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from .answering import Citation  # the dataclass the service returns describes itself
from .config import LIMITS

Question = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LIMITS.question_chars)
]


class Turn(BaseModel):
    # A client may send back whole earlier responses; only question and answer are used.
    model_config = ConfigDict(extra="ignore", strict=True)
    question: StrictStr = Field(max_length=LIMITS.question_chars)
    answer: StrictStr = Field(default="", max_length=LIMITS.answer_chars)


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    question: Question = Field(
        description=f"1 to {LIMITS.question_chars} characters after trimming"
    )
    history: list[Turn] = Field(
        default_factory=list, max_length=LIMITS.history_turns,
        description="earlier turns, oldest first",
    )
    top_k: StrictInt | None = Field(default=None, ge=1, le=LIMITS.top_k)
    sources: list[StrictStr] | None = Field(
        default=None, description="source ids to search (GET /api/sources)"
    )


class AnswerResponse(BaseModel):
    question: str
    answer: str
    short_answer: str | None
    answerable: bool
    confidence: float
    citations: list[Citation]
    index_version: str
    took_ms: float


class Source(BaseModel):
    source: str
    title: str
    author: str | None
    date: str | None
    url: str | None
    chunks: int
    sha256: str


class SourceDetail(Source):
    text: str
    metadata: dict[str, Any]
    pages: list[dict[str, int]]
    index_version: str = Field(description="the build whose text this is")


class RebuildReport(BaseModel):
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks: int
    embedded: int
    took_ms: float
    build_id: str
    embedded_sentences: int
    skipped: list[dict[str, str]]


class IndexInfo(BaseModel):
    version: str
    sources: int
    chunks: int
    model: str


class Health(BaseModel):
    status: str = Field(description='"ok", or "degraded" while the last good index stands in '
                                    "for a newer build that cannot be opened")
    index: IndexInfo
    reason: str | None = Field(default=None, description="why the status is degraded")


class ErrorBody(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    error: ErrorBody


# -- the OpenAI-compatible routes (chat_api.py) ------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: StrictStr = Field(description='only "text" parts are read')
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    # tool_calls, name, refusal and other OpenAI fields are accepted and not used.
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: StrictBool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: StrictStr


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request. Sampling parameters (temperature, top_p, max_tokens,
    seed, stop, penalties, user, tools, ...) are accepted and ignored: answers are quoted from
    the sources, not generated. `sources` and `top_k` are this service's own extras."""

    model_config = ConfigDict(extra="ignore", strict=True)
    model: StrictStr = Field(description="the id GET /v1/models lists")
    messages: list[ChatMessage] = Field(
        min_length=1, description="the conversation; the last message is the user's question"
    )
    stream: StrictBool | None = Field(default=False, description="server-sent events")
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(default=None, description="only 1")
    logprobs: StrictBool | None = Field(default=None, description="only false")
    response_format: ResponseFormat | None = Field(default=None, description='only "text"')
    top_k: StrictInt | None = Field(default=None, ge=1, le=LIMITS.top_k)
    sources: list[StrictStr] | None = Field(
        default=None, description="source ids to search (GET /api/sources)"
    )


class ChatReply(BaseModel):
    role: Literal["assistant"]
    content: str = Field(description="the answer with [n] markers, then a reference list")
    refusal: None


class ChatChoice(BaseModel):
    index: int
    message: ChatReply
    logprobs: None
    finish_reason: Literal["stop"]


class Usage(BaseModel):
    prompt_tokens: int = Field(description="0: no language model runs")
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str = Field(description="the index version that answered")
    choices: list[ChatChoice]
    usage: Usage
    qa: AnswerResponse = Field(description="the full answer, as POST /api/answer gives it")


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: None
    finish_reason: Literal["stop"] | None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed reply; the stream ends with `data: [DONE]`."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChunkChoice]
    usage: Usage | None = Field(default=None, description="only in the last chunk, when "
                                "stream_options.include_usage is true")
    qa: AnswerResponse | None = Field(default=None, description="in the chunk with the "
                                      "finish reason")


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


_MODELS = (AnswerRequest, AnswerResponse, Source, SourceDetail, RebuildReport, Health, Error,
           ChatCompletionRequest, ChatCompletion, ChatCompletionChunk, Model, ModelList,
           OpenAIError)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "bad request", 401: "wrong token", 403: "route turned off", 404: "not found",
            409: "a rebuild is running", 413: f"body over {LIMITS.body_bytes // 1024} KiB",
            422: "no readable sources",
            503: "no index can be opened (none built, damaged, or the folder cannot be written)"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _openai_errors(*statuses: int) -> dict[str, Any]:
    text = {400: "bad request", 404: "unknown model", 413: "body over "
            f"{LIMITS.body_bytes // 1024} KiB", 503: "no index built yet"}
    return {str(s): _json(_ref("OpenAIError"), text[s]) for s in statuses}


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qa-service",
            "version": "1",
            "description": "Answers questions from the indexed sources with exact citations.",
        },
        "paths": {
            "/api/answer": {"post": {
                "summary": "Answer a question with cited sentences from the sources",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("AnswerRequest")}}},
                "responses": {"200": _json(_ref("AnswerResponse"), "the answer"),
                              **_errors(400, 413, 503)},
            }},
            "/api/sources": {"get": {
                "summary": "The indexed sources",
                "responses": {"200": _json({"type": "array", "items": _ref("Source")},
                                           "the sources"), **_errors(503)},
            }},
            "/api/sources/{source}": {"get": {
                "summary": "One source with its cleaned text (what citation offsets point into)",
                "description": "Without `version`, the text of the index in service. With "
                               "`version` (an answer's `index_version`), the text of that build "
                               "while it is kept (the newest QA_KEEP_BUILDS builds), so a "
                               "citation's offsets can be checked against the exact text it was "
                               "made from; 404 once that build is gone.",
                "parameters": [{"name": "source", "in": "path", "required": True,
                                "description": "source id, URL-encoded",
                                "schema": {"type": "string"}},
                               {"name": "version", "in": "query", "required": False,
                                "description": "index version (build id) the text is wanted of",
                                "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("SourceDetail"), "the source"),
                              **_errors(404, 503)},
            }},
            "/api/index/rebuild": {"post": {
                "summary": "Rebuild the index from the sources folder and swap it in",
                "security": [{"bearer": []}],
                "responses": {"200": _json(_ref("RebuildReport"), "what the build did"),
                              **_errors(401, 403, 409, 422, 503)},
            }},
            "/api/feedback": {"post": {
                "summary": "Record a reader's verdict (up or down, optional comment) on an answer",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("FeedbackRequest")}}},
                "responses": {"201": _json(_ref("FeedbackStored"), "stored"),
                              **_errors(400, 413)},
            }},
            "/api/examples": {"get": {
                "summary": "Example questions for the page, built from the indexed sources",
                "responses": {"200": _json({"type": "array", "items": {"type": "string"}},
                                           "questions the service answers from the index"),
                              **_errors(503)},
            }},
            "/healthz": {"get": {
                "summary": "Service and index status",
                "responses": {"200": _json(_ref("Health"), "ready"), **_errors(503)},
            }},
            "/v1/models": {"get": {
                "summary": "OpenAI-compatible: the one model",
                "responses": {"200": _json(_ref("ModelList"), "the models")},
            }},
            "/v1/models/{model}": {"get": {
                "summary": "OpenAI-compatible: one model",
                "parameters": [{"name": "model", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("Model"), "the model"),
                              **_openai_errors(404)},
            }},
            "/v1/chat/completions": {"post": {
                "summary": "OpenAI-compatible chat completion: the cited answer to the last "
                           "user message, with `qa` holding the full answer",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("ChatCompletionRequest")}}},
                "responses": {
                    "200": {"description": "the reply; with stream: true, server-sent events "
                                           "of ChatCompletionChunk ending with data: [DONE]",
                            "content": {
                                "application/json": {"schema": _ref("ChatCompletion")},
                                "text/event-stream": {"schema": {"type": "string"}},
                            }},
                    **_openai_errors(400, 404, 413, 503),
                },
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document",
                                      "content": {"application/json": {}}}},
            }},
            "/": {"get": {
                "summary": "The chat page",
                "responses": {"200": {"description": "HTML page",
                                      "content": {"text/html": {}}}},
            }},
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


# -- feedback from the chat page (POST /api/feedback) -------------------------------------------

class FeedbackCitation(BaseModel):
    # The page sends its citations back; only what identifies the quote is kept.
    model_config = ConfigDict(extra="ignore", strict=True)
    n: StrictInt = Field(ge=1, le=LIMITS.top_k)
    source: StrictStr = Field(min_length=1, max_length=1000)
    title: StrictStr = Field(default="", max_length=1000)
    quote: StrictStr = Field(max_length=LIMITS.answer_chars)
    start: StrictInt = Field(ge=0)
    end: StrictInt = Field(ge=0)


class FeedbackRequest(BaseModel):
    """A reader's verdict on one answer, with what was asked and answered."""

    model_config = ConfigDict(extra="forbid", strict=True)
    verdict: Literal["up", "down"]
    comment: StrictStr = Field(default="", max_length=LIMITS.comment_chars)
    question: Question
    history: list[Turn] = Field(default_factory=list, max_length=LIMITS.history_turns)
    answer: StrictStr = Field(min_length=1, max_length=LIMITS.answer_chars)
    short_answer: StrictStr | None = Field(default=None, max_length=LIMITS.answer_chars)
    answerable: StrictBool
    confidence: float | None = Field(default=None, ge=0, le=1)  # strict: int or float
    citations: list[FeedbackCitation] = Field(default_factory=list, max_length=LIMITS.top_k)
    sources: list[StrictStr] | None = Field(default=None, description="source ids searched; null: all")
    index_version: StrictStr = Field(min_length=1, max_length=200)


class FeedbackStored(BaseModel):
    id: int
    created_at: str


_MODELS = (*_MODELS, FeedbackRequest, FeedbackStored)
