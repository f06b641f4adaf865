"""The production HTTP front: waitress with limits that hold against slow or hostile clients.

Waitress reads requests asynchronously and hands only complete ones to its worker threads, so
idle or half-sent connections cost a socket, not a thread. What bounds them:

- `max_request_body_size`: a body over the contract's limit (`LIMITS.body_bytes`) is refused
  with 413 from its Content-Length, before a byte of it is read or spooled to disk;
- `connection_limit` (QA_CONNECTION_LIMIT): open connections accepted at once; the default
  (100) let 110 idle sockets lock every client out;
- `channel_timeout` (QA_CHANNEL_TIMEOUT): an idle or half-sent connection is closed after it,
  checked every `cleanup_interval`;
- headers over `MAX_HEADER_BYTES` get 431.

Errors waitress raises itself (a malformed request, a bad chunk or Content-Length, headers or
body too large, an app that fails after starting its response) are sent in the contract's JSON
shape by `JSONErrorTask`, which replaces waitress's plain-text error task.
"""

from __future__ import annotations

import json
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ErrorTask

from .config import LIMITS, Settings

MAX_HEADER_BYTES = 16 * 1024  # a browser's request headers are well under 8 KiB

SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

_CODES = {400: "bad_request", 413: "too_large", 431: "too_large", 501: "not_implemented"}
_MESSAGES = {
    400: "the HTTP request is malformed ({detail}); send a valid HTTP/1.1 request",
    413: f"the request body is over {LIMITS.body_bytes // 1024} KiB; send a shorter question "
         "or less history",
    431: f"the request headers are over {MAX_HEADER_BYTES // 1024} KiB; send fewer or shorter "
         "headers",
    500: "the service failed on this request; it has been logged",
    501: "{detail}",
}


class JSONErrorTask(ErrorTask):
    """Waitress's own error responses, in the contract's `{"error": {...}}` shape."""

    def execute(self) -> None:
        error = self.request.error
        status = int(error.code)
        template = _MESSAGES.get(status, "{detail}")
        message = template.format(detail=str(error.body).strip() or error.reason)
        body = json.dumps({"error": {
            "code": _CODES.get(status, "bad_request" if status < 500 else "internal_error"),
            "message": message,
        }}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.response_headers.extend(SECURITY_HEADERS)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JSONErrorChannel(HTTPChannel):
    error_task_class = JSONErrorTask


def server_options(settings: Settings) -> dict[str, Any]:
    """Waitress's settings for `settings`: what `make_server` passes and the README lists."""
    return {
        "host": settings.host,
        "port": settings.port,
        "threads": settings.threads,
        "ident": "qa-service",
        # waitress refuses a body of `max_request_body_size` bytes or more; the contract allows
        # up to `body_bytes` inclusive.
        "max_request_body_size": LIMITS.body_bytes + 1,
        "max_request_header_size": MAX_HEADER_BYTES,
        "connection_limit": settings.connection_limit,
        "channel_timeout": settings.channel_timeout,
        "cleanup_interval": max(1, min(30, settings.channel_timeout // 2)),
        "asyncore_use_poll": True,  # select() fails past 1024 open sockets
        "backlog": 2048,
        "expose_tracebacks": False,
    }


def make_server(app: Any, settings: Settings) -> BaseWSGIServer | MultiSocketServer:
    """A bound waitress server for `app`; `run()` serves until `close()` or Ctrl-C."""
    server = create_server(app, **server_options(settings))
    listeners = [server] if isinstance(server, BaseWSGIServer) else [
        s for s in server.map.values() if isinstance(s, BaseWSGIServer)
    ]
    for listener in listeners:
        listener.channel_class = JSONErrorChannel
    return server
