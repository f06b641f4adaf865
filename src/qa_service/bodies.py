"""Reading a request's JSON body so that no input can make the service fail: a size limit,
a nesting limit checked before parsing, bounded numbers and no lone surrogates. Used by the
contract's routes (web.py) and the OpenAI-style ones (chat_api.py); raises `BadRequest` or
`TooLarge`, which each layer turns into its own error shape.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from .config import LIMITS
from .errors import BadRequest, QAError

MAX_JSON_DEPTH = 32  # a valid request nests 4 deep at most (body → messages → message → part)
MAX_NUMBER_DIGITS = 30  # a valid top_k has 2; Python refuses ints over 4300 digits with a 500


class TooLarge(QAError):
    code = "too_large"
    status = 413

    def __init__(self) -> None:
        super().__init__(f"the request body is over {LIMITS.body_bytes // 1024} KiB; send a "
                         "shorter question or less history")


def printable(message: str) -> str:
    """`message` with text UTF-8 cannot encode (a lone surrogate quoted from the caller's
    input) escaped, so that an error about it can always be sent."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def read_json(example: str) -> Any:
    """The request's body as JSON; `example` is a valid body, shown in the error messages."""
    raw = request.get_data(cache=False)  # Flask raises 413 past MAX_CONTENT_LENGTH
    if len(raw) > LIMITS.body_bytes:
        raise TooLarge()
    hint = f"send an object such as {example} with Content-Type: application/json"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8 JSON ({exc}); {hint}") from None
    _check_depth(text)
    try:
        body = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise BadRequest(f"the body is not valid UTF-8 JSON ({exc}); {hint}") from None
    try:  # "\udc00" escapes decode to lone surrogates, which no UTF-8 text can hold
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the body holds a lone surrogate escape (such as \\udc00), which is "
                         "not text; send valid Unicode") from None
    return body


def _check_depth(text: str) -> None:
    """Refuse deep nesting before parsing: 10,000 nested lists overflow Python's stack.

    One pass over the text, brackets inside strings not counted.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:  # the usual body: no scan needed
        return
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels; a "
                                 "request needs 4 at most (see /openapi.json)")
        elif char in "]}":
            depth -= 1


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise BadRequest(f"a number in the body has {len(digits.lstrip('-'))} digits; numbers "
                         f"may have at most {MAX_NUMBER_DIGITS} (top_k is 1 to {LIMITS.top_k})")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not valid JSON; send numbers as digits")
