from __future__ import annotations

from pathlib import Path

import pytest

from qa_service.config import LIMITS, Settings, settings_help
from qa_service.errors import ConfigError


def test_defaults_work_from_the_project_root():
    settings = Settings.from_env({})
    assert settings.sources_dir == Path("sources")
    assert settings.index_dir == Path("index")
    assert settings.model == "sentence-transformers/all-MiniLM-L6-v2"


def test_environment_then_flags():
    env = {"QA_INDEX_DIR": "/tmp/x", "QA_TOP_K": "7"}
    settings = Settings.from_env(env, top_k=3)
    assert settings.index_dir == Path("/tmp/x")
    assert settings.top_k == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QA_TOPK": "3"}, "unknown setting QA_TOPK"),
        ({"QA_TOP_K": "many"}, "QA_TOP_K must be a whole number"),
        ({"QA_TOP_K": "0"}, "top_k must be at least 1"),
        ({"QA_TOP_K": "25"}, "QA_TOP_K .* is 25, but a request may ask for at most 20"),
        ({"QA_CHUNK_OVERLAP": "9"}, "chunk_overlap must be between 0"),
        ({"QA_INDEX_DIR": " "}, "QA_INDEX_DIR is set but empty"),
        ({"QA_PORT": "70000"}, "port must be 1-65535"),
        ({"QA_WORKERS": "-1"}, "QA_WORKERS .* must be 0 .one per core. or more"),
        ({"QA_MAX_SOURCE_MB": "0"}, "max_source_mb must be at least 1"),
        ({"QA_CHANNEL_TIMEOUT": "0"}, "channel_timeout must be at least 1"),
    ],
)
def test_bad_settings_are_refused_by_name(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_help_lists_every_setting():
    text = settings_help()
    for name in ("QA_SOURCES_DIR", "QA_INDEX_DIR", "QA_MODEL", "QA_ADMIN_TOKEN", "QA_TOP_K"):
        assert name in text


def test_the_largest_top_k_a_request_may_ask_is_a_valid_default():
    assert Settings.from_env({"QA_TOP_K": str(LIMITS.top_k)}).top_k == LIMITS.top_k
