"""A bounded schemathesis run (fixed seed, every phase) against the real HTTP server: no 5xx,
and every response valid against the service's own /openapi.json."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from qa_service.server import make_server
from qa_service.web import create_app

from .test_server import _free_port


@pytest.fixture
def running(built_fake):
    settings = replace(built_fake.settings, host="127.0.0.1", port=_free_port(), threads=4)
    server = make_server(create_app(settings, built_fake), settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{settings.port}"
    server.close()
    thread.join(timeout=10)


def test_schemathesis_finds_no_5xx_and_no_response_off_the_schema(running, tmp_path: Path):
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is installed by the test extra (pip install -e '.[test]')"
    done = subprocess.run(
        [cli, "run", f"{running}/openapi.json", "--seed", "20261122", "--max-examples", "40",
         "--phases", "examples,coverage,fuzzing,stateful",
         "--checks", "not_a_server_error,response_schema_conformance,"
                     "content_type_conformance,status_code_conformance",
         "--workers", "1", "--request-timeout", "30", "--no-color",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
