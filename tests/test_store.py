from __future__ import annotations

import json

import numpy as np
import pytest

from qa_service.embedding import HashingEmbedder
from qa_service.errors import BuildRunning, IndexFormatError, IndexNotReady, NoSources
from qa_service.service import QAService
from qa_service.store import FORMAT_VERSION, IndexStore


def test_build_writes_a_versioned_build_and_a_pointer(fake_service):
    report = fake_service.build()
    store = fake_service.store
    assert store.current_build_id() == report.build_id
    folder = store.builds_dir / report.build_id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == {"name": "test-hashing-64", "dimension": 64}
    assert manifest["chunking"]["sentences"] == 4
    assert {s["source"] for s in manifest["sources"]} == {"alpha.txt", "beta.md"}
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])
    assert set(manifest["files"]) >= {"dense.faiss", "passages.json", "documents.json"}
    assert report.added == 2 and report.embedded == report.chunks


def test_no_index_yet_says_how_to_build(fake_service):
    with pytest.raises(IndexNotReady, match="qa-service build"):
        fake_service.ask("anything?")


def test_index_of_another_model_is_refused(fake_service, fake_settings):
    fake_service.build()
    other = QAService(fake_settings, embedder=HashingEmbedder(dimension=32))
    with pytest.raises(IndexFormatError, match="built with model 'test-hashing-64'.*rebuild"):
        other.ask("When was the Alpha treaty signed?")


def test_index_of_another_format_version_is_refused(fake_service):
    report = fake_service.build()
    path = fake_service.store.builds_dir / report.build_id / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version .*qa-service build"):
        QAService(fake_service.settings, embedder=HashingEmbedder()).ask("Alpha?")


def test_damaged_file_is_refused(fake_service):
    report = fake_service.build()
    (fake_service.store.builds_dir / report.build_id / "passages.json").write_text("[]")
    with pytest.raises(IndexFormatError, match="does not match its manifest"):
        QAService(fake_service.settings, embedder=HashingEmbedder()).ask("Alpha?")


def test_a_save_that_fails_half_way_leaves_the_old_index(fake_service, monkeypatch):
    first = fake_service.build()
    (fake_service.settings.sources_dir / "gamma.txt").write_text(
        "Gamma harbour was dredged in 1999 by a Dutch firm.", encoding="utf-8")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fake_service.build()
    monkeypatch.undo()
    store = fake_service.store
    assert store.current_build_id() == first.build_id
    assert not list(store.builds_dir.glob(".tmp-*"))
    fresh = QAService(fake_service.settings, embedder=HashingEmbedder())
    assert fresh.ask("When was the Alpha treaty signed?")["index_version"] == first.build_id


def test_one_build_at_a_time(fake_service):
    with fake_service.store.build_lock():
        with pytest.raises(BuildRunning, match="another build"):
            fake_service.build()


def test_old_builds_are_pruned_but_the_current_one_stays(fake_service):
    ids = [fake_service.build().build_id for _ in range(4)]
    kept = sorted(p.name for p in fake_service.store.builds_dir.iterdir())
    assert len(kept) == fake_service.settings.keep_builds
    assert ids[-1] in kept


def test_leftovers_of_a_killed_build_are_cleared(fake_service):
    store: IndexStore = fake_service.store
    store.builds_dir.mkdir(parents=True)
    (store.builds_dir / ".tmp-20200101T000000-dead").mkdir()
    fake_service.build()
    assert not list(store.builds_dir.glob(".tmp-*"))


def test_nothing_changed_embeds_nothing(fake_service):
    fake_service.build()
    again = fake_service.build()
    assert again.embedded == 0 and again.embedded_sentences == 0
    assert again.unchanged == 2 and again.added == again.changed == again.removed == 0


def test_empty_sources_folder_is_an_error_that_names_it(fake_service):
    for path in fake_service.settings.sources_dir.iterdir():
        path.unlink()
    with pytest.raises(NoSources, match="no readable sources in"):
        fake_service.build()
