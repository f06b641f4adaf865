"""The waitress front, served for real on 127.0.0.1: limits that hold, errors in JSON, and a
bounded schemathesis run: no 5xx, every response valid against /openapi.json."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from qa_service.server import make_server
from qa_service.web import create_app


@pytest.fixture
def live(built_fake, request):
    """(host, port) of the real server over the fake-embedder service, on a free port."""
    settings = replace(built_fake.settings, host="127.0.0.1", port=_free_port(), threads=4,
                       **getattr(request, "param", {}))
    server = make_server(create_app(settings, built_fake), settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield settings.host, settings.port
    server.close()
    thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exchange(address, raw: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the response until the server closes or its body is complete."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def _json_error(status, headers, body, expected_status: int, code: str) -> str:
    assert status == expected_status, body
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"} and error["code"] == code
    return error["message"]


def test_healthz_answers_within_a_second_through_a_slow_client_flood(live):
    flood = []
    try:
        for _ in range(200):  # each sends half a request and waits
            sock = socket.create_connection(live, timeout=5)
            sock.sendall(b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            flood.append(sock)
        began = time.monotonic()
        status, _, body = _exchange(live, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n", timeout=5)
        took = time.monotonic() - began
    finally:
        for sock in flood:
            sock.close()
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert took < 1.0, f"/healthz took {took:.2f} s behind 200 slow clients"


def test_a_huge_body_is_refused_from_its_length_before_it_is_read(live):
    # 200 MB announced, none sent: the 413 must come without waiting for the body.
    status, headers, body = _exchange(
        live, b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 209715200\r\n\r\n{", timeout=5)
    assert "64 KiB" in _json_error(status, headers, body, 413, "too_large")


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"POST /api/answer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
     "bad_request"),
    (b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "bad_request"),
    (b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431,
     "too_large"),
])
def test_errors_of_the_http_server_itself_are_json(live, raw, status, code):
    _json_error(*_exchange(live, raw), status, code)


def test_a_normal_request_goes_through_with_the_security_headers(live):
    body = json.dumps({"question": "When was the Alpha treaty signed?"}).encode()
    status, headers, data = _exchange(live, b"POST /api/answer HTTP/1.1\r\nHost: x\r\n"
                                            b"Content-Type: application/json\r\nConnection: close"
                                            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 200 and json.loads(data)["citations"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("live", [{"channel_timeout": 1}], indirect=True)
def test_a_half_sent_request_is_dropped_after_the_channel_timeout(live):
    with socket.create_connection(live, timeout=15) as sock:
        sock.sendall(b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert sock.recv(1024) == b""  # closed by the server, long before the 15 s timeout


def test_schemathesis_finds_no_5xx_and_no_response_off_the_schema(live, tmp_path: Path):
    """A bounded run (fixed seed, every phase, ~500 requests, ~15 s) against the real server."""
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is installed by the test extra (pip install -e '.[test]')"
    host, port = live
    done = subprocess.run(
        [cli, "run", f"http://{host}:{port}/openapi.json", "--seed", "20261122",
         "--max-examples", "40", "--phases", "examples,coverage,fuzzing,stateful",
         "--checks", "not_a_server_error,response_schema_conformance,"
                     "content_type_conformance,status_code_conformance",
         "--workers", "1", "--request-timeout", "30", "--no-color",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 generated" not in done.stdout


def _children(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()}


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str, body: dict | None = None) -> int:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.status


@pytest.mark.slow
def test_workers_share_one_port_are_restarted_and_stop_together(real_index, tmp_path):
    port = _free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(real_index.index_dir), "HF_HUB_OFFLINE": "1",
           "QA_SOURCES_DIR": str(real_index.sources_dir), "QA_PORT": str(port),
           "QA_WORKERS": "2", "QA_THREADS": "2"}
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qa_service", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _until(lambda: _get(f"{base}/healthz") == 200, 180, "the workers to serve")
        first = _children(proc.pid)
        assert len(first) == 2
        question = {"question": "What did the 1996 license contract cover?"}
        assert all(_get(f"{base}/api/answer", question) == 200 for _ in range(6))
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        second = _until(lambda: (c := _children(proc.pid)) and len(c) == 2 and victim not in c
                        and c, 120, "a new worker")
        _until(lambda: all(_get(f"{base}/api/answer", question) == 200 for _ in range(4)), 120,
               "answers after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    output = (tmp_path / "serve.log").read_text()
    assert code == 0, output
    assert "2 worker process(es)" in output and f"worker {victim} ended" in output
    assert not [pid for pid in first | second if Path(f"/proc/{pid}").exists()]


def test_workers_that_cannot_start_stop_the_server_instead_of_looping(tmp_path):
    script = f"""
import sys
from qa_service.config import Settings
from qa_service.server import ServerError, serve

def broken():
    raise RuntimeError("no model here")

try:
    serve(Settings(port={_free_port()}, workers=2), broken)
except ServerError as exc:
    print("stopped:", exc.message)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "workers in a row ended within" in done.stdout
    assert "no model here" in done.stderr  # each worker's failure is logged
