from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from qa_service.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def _env(settings):
    return {"QA_INDEX_DIR": str(settings.index_dir), "QA_SOURCES_DIR": str(settings.sources_dir)}


def test_ask_json_has_the_api_shape(runner, real_index):
    result = runner.invoke(
        main, ["ask", "When was the intergovernmental agreement on military-technical "
                      "cooperation signed?", "--json"], env=_env(real_index))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["short_answer"] == "November 24, 1992"
    assert data["citations"][0]["n"] == 1
    assert {"answer", "answerable", "confidence", "index_version", "took_ms"} <= set(data)


def test_ask_text_shows_sources(runner, real_index):
    result = runner.invoke(main, ["ask", "Which fighters did China build in violation of the "
                                         "license?"], env=_env(real_index))
    assert result.exit_code == 0
    assert "J-11B" in result.output and "Sources:" in result.output


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["ask", "Anything?"], {"QA_INDEX_DIR": "{tmp}/none"}, 1, "no index has been built"),
        (["ask", "   "], {}, 1, "question is empty"),
        (["ask", "x", "--top-k", "50"], {}, 2, "50 is not in the range"),
        (["build"], {"QA_SOURCES_DIR": "{tmp}/missing"}, 1, "does not exist"),
        (["ask", "x"], {"QA_TOPK": "3"}, 1, "unknown setting QA_TOPK"),
        # Refused before the model loads or the port opens, naming the setting.
        (["serve"], {"QA_TOP_K": "25"}, 1, "setting QA_TOP_K (top_k) is 25"),
    ],
)
def test_errors_exit_with_a_message(runner, real_index, tmp_path, args, env, code, message):
    full = _env(real_index)
    full.update({k: v.format(tmp=tmp_path) for k, v in env.items()})
    result = runner.invoke(main, args, env=full)
    assert result.exit_code == code
    assert message in result.output


def test_help_lists_settings(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "QA_INDEX_DIR" in result.output and "QA_MODEL" in result.output


def test_eval_prints_figures_calibration_and_misses(runner, real_index):
    from .conftest import GOLD

    result = runner.invoke(main, ["eval", str(GOLD / "paraphrased.jsonl"), "--compare"],
                           env=_env(real_index))
    assert result.exit_code == 0, result.output
    for label in ("answer_accuracy", "recall_at_5", "mrr", "latency_p95_ms", "hybrid", "dense",
                  "confidence   answers   right"):
        assert label in result.stdout


def test_eval_rejects_a_bad_gold_file(runner, real_index, tmp_path):
    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"question": "ok?", "answers": ["x"]}\nnot json\n', encoding="utf-8")
    result = runner.invoke(main, ["eval", str(bad)], env=_env(real_index))
    assert result.exit_code == 1 and "line 2: not JSON" in result.output


def test_serve_dev_never_turns_the_debugger_on(runner, fake_settings, monkeypatch):
    import werkzeug.serving

    from qa_service.service import QAService

    seen = {}
    monkeypatch.setattr(QAService, "warm_up", lambda self: None)
    monkeypatch.setattr(werkzeug.serving, "run_simple",
                        lambda host, port, app, **options: seen.update(app=app, **options))
    result = runner.invoke(main, ["serve", "--dev"], env={**_env(fake_settings), "FLASK_DEBUG": "1"})
    assert result.exit_code == 0, result.output
    assert seen["use_debugger"] is False and seen["use_reloader"] is False
    assert seen["app"].debug is False


def test_ctrl_c_during_a_build_keeps_the_old_index_and_frees_the_lock(built_fake):
    import fcntl
    import subprocess
    import sys

    settings = built_fake.settings
    before = built_fake.store.current_build_id()
    (settings.sources_dir / "gamma.txt").write_text("Gamma harbour was dredged in 1999 by a "
                                                   "Dutch firm.", encoding="utf-8")
    script = f"""
import os, signal
from pathlib import Path
from qa_service.cli import _build_with_progress
from qa_service.config import Settings
from qa_service.embedding import HashingEmbedder
from qa_service.service import QAService

class Interrupted(HashingEmbedder):
    def embed_documents(self, texts, progress=None):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while embedding
        return super().embed_documents(texts, progress)

settings = Settings(sources_dir=Path({str(settings.sources_dir)!r}),
                    index_dir=Path({str(settings.index_dir)!r}))
_build_with_progress(QAService(settings, embedder=Interrupted()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130, done.stderr
    assert "Build cancelled: the index in service is unchanged" in done.stderr
    assert built_fake.store.current_build_id() == before
    with open(settings.index_dir / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no BlockingIOError
    assert not list((settings.index_dir / "builds").glob(".tmp-*"))


def test_build_progress_off_a_terminal_prints_an_estimate(monkeypatch, capsys):
    import time

    from qa_service.cli import _BuildProgress

    clock = iter([0.0, 12.0, 36.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    progress = _BuildProgress()
    progress.tty = False
    progress("embedding passages", 0, 1000)
    progress("embedding passages", 100, 1000)  # 100 in 12 s: 900 more take 108 s
    progress("embedding passages", 400, 1000)  # 400 in 36 s: 600 more take 54 s
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["embedding passages: 100/1000, about 2 min left",
                     "embedding passages: 400/1000, about 54 s left"]


def test_build_if_missing_keeps_a_usable_index_and_replaces_an_unusable_one(
        runner, real_index, tmp_path):
    import shutil

    shutil.copytree(real_index.sources_dir, tmp_path / "sources")
    shutil.copytree(real_index.index_dir, tmp_path / "index")
    env = {"QA_INDEX_DIR": str(tmp_path / "index"), "QA_SOURCES_DIR": str(tmp_path / "sources")}
    kept = runner.invoke(main, ["build", "--if-missing"], env=env)
    assert kept.exit_code == 0 and "already built; nothing to do" in kept.output
    current = (tmp_path / "index" / "CURRENT").read_text().strip()
    manifest = tmp_path / "index" / "builds" / current / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format_version": 3', '"format_version": 1'))
    rebuilt = runner.invoke(main, ["build", "--if-missing"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "cannot be used" in rebuilt.output and "building a new one" in rebuilt.output
    assert (tmp_path / "index" / "CURRENT").read_text().strip() != current


def test_check_reads_every_byte_and_names_an_edited_file(runner, real_index, tmp_path):
    import json
    import shutil

    shutil.copytree(real_index.index_dir, tmp_path / "index")
    env = {"QA_INDEX_DIR": str(tmp_path / "index"), "QA_SOURCES_DIR": str(real_index.sources_dir)}
    result = runner.invoke(main, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert "every file matches its checksum" in result.output
    current = (tmp_path / "index" / "CURRENT").read_text().strip()
    manifest = json.loads((tmp_path / "index" / "builds" / current / "manifest.json").read_text())
    texts = tmp_path / "index" / "segments" / manifest["segments"][0]["id"] / "texts.bin"
    raw = bytearray(texts.read_bytes())
    raw[100] ^= 0x20  # one letter's case: the same size, so opening the index does not see it
    texts.write_bytes(bytes(raw))
    result = runner.invoke(main, ["check"], env=env)
    assert result.exit_code == 1 and "texts.bin does not match its segment.json" in result.output
