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
