"""The README's code runs as written: the Python API example and the OpenAI client snippet."""

from __future__ import annotations

import contextlib
import io
import re
import shutil

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _python_block(heading: str) -> str:
    """The first ```python block of the README section under `heading`."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"no python example under '## {heading}'"
    return found.group(1)


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


def test_python_api_example_runs(real_index, tmp_path, monkeypatch):
    # A folder holding sources/ (and the index already built from them, so the example's
    # build() reuses every vector, as it would on a second run).
    shutil.copytree(real_index.sources_dir, tmp_path / "sources")
    shutil.copytree(real_index.index_dir, tmp_path / "index")
    monkeypatch.chdir(tmp_path)
    printed = _run(_python_block("Python API"))
    assert "passages, 0 embedded" in printed
    assert "Su-27SK" in printed and "[1] " in printed
    assert "2.2–2.5 billion" in printed
    assert "J-11B" in printed  # from the one source searched
    assert "bad_request 400 question is empty" in printed


def test_openai_snippet_runs(live_server):
    pytest.importorskip("openai")
    code = _python_block("Chat clients (OpenAI-compatible)")
    assert "http://127.0.0.1:8000/v1" in code
    printed = _run(code.replace("http://127.0.0.1:8000", live_server))
    assert "Sources:\n[1] " in printed and "True" in printed
    assert "2.2–2.5 billion" in printed.split("True", 1)[1]  # the streamed follow-up


def test_the_top_level_is_the_product_card():
    # index/ is in a fresh clone (its README is tracked; the builds are ignored).
    for name in ("pyproject.toml", "README.md", "sources", "src/qa_service", "index", "tests"):
        assert (ROOT / name).exists(), name
    assert (ROOT / "index" / "README.md").is_file()
    assert "/index/*" in (ROOT / ".gitignore").read_text() and "!/index/README.md" in (
        ROOT / ".gitignore").read_text()


def test_every_setting_is_in_the_readme():
    from qa_service.config import SETTINGS_TABLE

    settings = README.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    missing = [env for _, env, _, _, _ in SETTINGS_TABLE if f"`{env}`" not in settings]
    assert not missing
