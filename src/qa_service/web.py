"""The Flask layer: the JSON API of shared/API.md and the chat page.

No retrieval logic lives here: routes parse and validate the request (pydantic), call the one
`QAService` kept in `app.extensions`, and turn every error into the contract's JSON shape.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from . import chat_api
from .bodies import printable, read_json
from .config import LIMITS, Settings
from .errors import BadRequest, QAError
from .feedback import FeedbackStore
from .schemas import AnswerRequest, FeedbackRequest, openapi_document
from .service import QAService

MAX_BODY_BYTES = LIMITS.body_bytes
EXAMPLE_BODY = '{"question": "..."}'
log = logging.getLogger(__name__)

# The page loads its script and style from /static only: no inline code, no other origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

api = Blueprint("api", __name__)
page = Blueprint("page", __name__)


def create_app(settings: Settings | None = None, service: QAService | None = None) -> Flask:
    """The WSGI app. Settings come from the environment only when none are given."""
    if settings is None:
        settings = service.settings if service is not None else Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # A source id with "//" must reach the route (and get a JSON 404), not an HTML redirect.
    app.url_map.merge_slashes = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["qa_service"] = service or QAService(settings)
    app.extensions["qa_settings"] = settings
    app.register_blueprint(api)
    app.register_blueprint(page)
    app.register_blueprint(chat_api.chat)
    app.register_error_handler(chat_api.ChatError, chat_api.error_response)
    app.register_error_handler(QAError, _qa_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_security_headers)
    return app


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _service() -> QAService:
    return current_app.extensions["qa_service"]


def _error(code: str, message: str, status: int):
    message = printable(message)
    if chat_api.is_chat_path(request.path):  # the OpenAI-style routes keep OpenAI's shape
        return chat_api.error_response(chat_api.ChatError(status, message, code=code))
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _qa_error(exc: QAError):
    if chat_api.is_chat_path(request.path):
        return chat_api.error_response(chat_api.from_qa_error(exc))
    return _error(exc.code, exc.message, exc.status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _http_error(exc: HTTPException):
    status = exc.code or 500
    message = {
        404: f"no route {request.path}; see GET /openapi.json for the routes",
        405: f"{request.method} is not allowed on {request.path}",
        413: f"the request body is over {MAX_BODY_BYTES // 1024} KiB; send a shorter question "
             "or less history",
    }.get(status, exc.description or exc.name)
    response = _error(_HTTP_CODES.get(status, "bad_request" if status < 500 else "internal_error"),
                      message, status)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def _unexpected_error(_exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _error("internal_error", "the service failed on this request; it has been logged",
                  500)


def _validation_message(exc: ValidationError, model: type[BaseModel] = AnswerRequest) -> str:
    """Pydantic's errors as one line naming each field, for the request `model`."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        text = err["msg"]
        if err["type"] == "extra_forbidden":
            text = f"unknown field; allowed: {', '.join(model.model_fields)}"
        elif (model is AnswerRequest and where == "question"
              and err["type"] in ("string_too_short", "missing")):
            text = f"required: a question of 1 to {LIMITS.question_chars} characters"
        parts.append(f"{where}: {text}")
    return "; ".join(parts)


@api.post("/api/answer")
def answer():
    body = read_json(EXAMPLE_BODY)
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object such as {"question": "..."}')
    try:
        req = AnswerRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(_validation_message(exc)) from None
    history = [turn.model_dump() for turn in req.history]
    result = _service().ask(req.question, history=history, top_k=req.top_k, sources=req.sources)
    return jsonify(result)


@api.get("/api/sources")
def sources():
    return jsonify(_service().list_sources())


@api.get("/api/sources/<path:source>")
def source(source: str):
    version = request.args.get("version") or None
    return jsonify(_service().get_source(source, version=version))


@api.post("/api/index/rebuild")
def rebuild():
    token = current_app.extensions["qa_settings"].admin_token
    if not token:
        return _error("forbidden", "rebuilding over HTTP is turned off: set QA_ADMIN_TOKEN "
                      "to turn it on, or run `qa-service build`", 403)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return _error("unauthorized", "send Authorization: Bearer <QA_ADMIN_TOKEN>", 401)
    report = _service().build()
    return jsonify(report.to_dict())


@api.get("/healthz")
def healthz():
    return jsonify(_service().health())


@api.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@page.get("/")
def index():
    return render_template("index.html", limits=LIMITS)


# -- example questions for the page ------------------------------------------------------------

EXAMPLE_COUNT = 3
EXAMPLE_MIN_CONFIDENCE = 0.4  # the floor of the page's "medium" band (see static/app.js)


def example_questions(service: QAService) -> list[str]:
    """Questions the page offers as examples, built from what is indexed: one per source, the
    largest sources first, each kept only when the service answers it from that very source
    with at least medium confidence, so an example never leads to a refusal."""
    examples: list[str] = []
    for source in sorted(service.list_sources(), key=lambda s: -s["chunks"]):
        title = source["title"].strip()
        if not title or title == source["source"]:
            continue
        question = f"What does “{title}” say?"
        if len(question) > LIMITS.question_chars:
            continue
        result = service.ask(question)
        cited = {c["source"] for c in result["citations"]}
        if (result["answerable"] and result["confidence"] >= EXAMPLE_MIN_CONFIDENCE
                and cited == {source["source"]} and len(result["answer"]) > len(title) + 20):
            examples.append(question)
        if len(examples) == EXAMPLE_COUNT:
            break
    return examples


@api.get("/api/examples")
def examples():
    # Computed once per index build: a rebuild may change what fits.
    version = _service().health()["index"]["version"]
    cache = current_app.extensions.setdefault("qa_examples", {})
    if version not in cache:
        cache.clear()
        cache[version] = example_questions(_service())
    return jsonify(cache[version])


# -- feedback from the page --------------------------------------------------------------------

def _feedback_store() -> FeedbackStore:
    # Created on first use, so an app that never receives feedback never makes a data folder.
    store = current_app.extensions.get("qa_feedback")
    if store is None:
        store = FeedbackStore(current_app.extensions["qa_settings"].data_dir)
        current_app.extensions["qa_feedback"] = store
    return store


@api.post("/api/feedback")
def feedback():
    body = read_json('{"question": "...", "answer": "...", "verdict": "up"}')
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object such as {"verdict": "up", ...}')
    try:
        req = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(_validation_message(exc, FeedbackRequest)) from None
    stored = _feedback_store().add(req.model_dump())
    response = jsonify({"id": stored.id, "created_at": stored.created_at})
    response.status_code = 201
    return response
