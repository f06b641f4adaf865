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

One process answers on one core, so `serve()` runs `QA_WORKERS` processes (one per core by
default) that accept from one listening socket, as a pre-forking server does: the parent binds
the socket and forks before anything heavy is loaded (a forked ONNX Runtime or OpenMP thread
pool would hang), each worker loads the model and the index itself, and the parent restarts a
worker that dies and stops them all on SIGTERM or Ctrl-C. Each worker notices a new build on
its next request, as one process does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ErrorTask

from .config import LIMITS, Settings
from .errors import QAError

log = logging.getLogger(__name__)

EARLY_DEATH_S = 10  # a worker that ends sooner than this after starting failed to start...
EARLY_DEATHS = 3  # ...and this many in a row stop the server instead of restarting forever


class ServerError(QAError):
    code = "server_failed"
    status = 500

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


def make_server(app: Any, settings: Settings,
                listener: socket.socket | None = None) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server for `app`, bound to `settings`' address or accepting from `listener`;
    `run()` serves until `close()` or Ctrl-C."""
    options = server_options(settings)
    if listener is not None:
        del options["host"], options["port"]
        options["sockets"] = [listener]
    server = create_server(app, **options)
    listeners = [server] if isinstance(server, BaseWSGIServer) else [
        s for s in server.map.values() if isinstance(s, BaseWSGIServer)
    ]
    for listener in listeners:
        listener.channel_class = JSONErrorChannel
    return server


def worker_count(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 1


def serve(settings: Settings, make_app: Callable[[], Any],
          ready: Callable[[str], None] | None = None) -> None:
    """Serve `make_app()` with `worker_count(settings)` processes until SIGTERM or Ctrl-C.

    `make_app` runs in each worker, after the fork; `ready` is told the address once bound.
    """
    workers = worker_count(settings)
    if workers == 1:
        server = make_server(make_app(), settings)
        if ready:
            ready(_address(server.socket if isinstance(server, BaseWSGIServer) else None,
                           settings))
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
        return
    listener = socket.create_server((settings.host, settings.port), reuse_port=False,
                                    backlog=server_options(settings)["backlog"])
    listener.setblocking(False)
    if ready:
        ready(_address(listener, settings))
    children: dict[int, float] = {}
    stopping = False
    early = 0  # workers in a row that died soon after starting

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(workers):
            children[_fork_worker(settings, make_app, listener)] = time.monotonic()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            started = children.pop(pid, None)
            if stopping or started is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            early = early + 1 if time.monotonic() - started < EARLY_DEATH_S else 0
            if early >= EARLY_DEATHS:
                stop(signal.SIGTERM, None)
                raise ServerError(f"{early} workers in a row ended within {EARLY_DEATH_S} s of "
                                  f"starting (last exit {code}); the log above says why")
            log.warning("worker %d ended (exit %d); starting another", pid, code)
            children[_fork_worker(settings, make_app, listener)] = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for pid in list(children):
            _signal(pid, signal.SIGKILL)
        listener.close()


def _fork_worker(settings: Settings, make_app: Callable[[], Any],
                 listener: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _exit_quietly)
        server = make_server(make_app(), settings, listener)
        server.run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # a worker's failure is logged; the parent starts another
        log.exception("worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


def _exit_quietly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _address(sock: socket.socket | None, settings: Settings) -> str:
    host, port = sock.getsockname()[:2] if sock is not None else (settings.host, settings.port)
    return f"http://{host}:{port}/"
