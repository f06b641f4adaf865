from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from qa_service.embedding import HashingEmbedder
from qa_service.errors import (
    BuildRunning,
    IndexFormatError,
    IndexNotReady,
    IndexWriteError,
    NoSources,
)
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
    [listed] = manifest["segments"]
    assert listed["deleted"] == [] and listed["passages"] == report.chunks
    segment = json.loads((store.segments_dir / listed["id"] / "segment.json").read_text())
    assert set(segment["files"]) >= {"passages.npy", "texts.bin", "post_rows.npy"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] >= 0 for f in segment["files"].values())
    assert report.added == 2 and report.embedded == report.chunks


def _segment(store, build_id: str):
    """The folder of the first segment of build `build_id`."""
    manifest = json.loads((store.builds_dir / build_id / "manifest.json").read_text())
    return store.segments_dir / manifest["segments"][0]["id"]


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


def test_a_file_of_another_size_is_refused_at_load(fake_service):
    report = fake_service.build()
    path = _segment(fake_service.store, report.build_id) / "passage_span.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(IndexFormatError, match="passage_span.npy does not match its segment.json"):
        QAService(fake_service.settings, embedder=HashingEmbedder()).ask("Alpha?")


def test_a_file_edited_in_place_is_found_by_a_full_check_only(fake_service):
    report = fake_service.build()
    path = _segment(fake_service.store, report.build_id) / "texts.bin"
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01  # same size: opening checks sizes, not every byte
    path.write_bytes(bytes(data))
    store = IndexStore(fake_service.settings.index_dir)
    manifest = store.read_manifest()
    store.verify(report.build_id, manifest, "test-hashing-64")
    with pytest.raises(IndexFormatError, match="texts.bin does not match its segment.json"):
        store.verify(report.build_id, manifest, "test-hashing-64", full=True)


def test_a_save_that_fails_half_way_leaves_the_old_index(fake_service, monkeypatch):
    first = fake_service.build()
    (fake_service.settings.sources_dir / "gamma.txt").write_text(
        "Gamma harbour was dredged in 1999 by a Dutch firm.", encoding="utf-8")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(IndexWriteError, match="disk full. Make the folder writable"):
        fake_service.build()
    monkeypatch.undo()
    store = fake_service.store
    assert store.current_build_id() == first.build_id
    assert not list(store.builds_dir.glob(".tmp-*"))
    assert not list(store.segments_dir.glob(".tmp-*"))
    fresh = QAService(fake_service.settings, embedder=HashingEmbedder())
    assert fresh.ask("When was the Alpha treaty signed?")["index_version"] == first.build_id


def test_one_build_at_a_time(fake_service):
    with fake_service.store.build_lock():
        with pytest.raises(BuildRunning, match="another build"):
            fake_service.build()


def test_old_builds_are_pruned_but_the_current_one_stays(fake_service):
    ids = [fake_service.build(force=True).build_id for _ in range(4)]
    store = fake_service.store
    kept = sorted(p.name for p in store.builds_dir.iterdir())
    assert len(kept) == fake_service.settings.keep_builds
    assert ids[-1] in kept
    # Segments no kept build lists are removed with the builds.
    listed = {s["id"] for b in kept for s in store.read_manifest(b)["segments"]}
    assert {p.name for p in store.segments_dir.iterdir()} == listed


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


def _damage(store, build_id: str, how: str) -> str:
    """Damage the build `build_id` the way `how` says; the file the message must name."""
    folder = store.builds_dir / build_id
    if how == "deleted data file":
        (_segment(store, build_id) / "passages.npy").unlink()
        return "passages.npy"
    if how == "manifest without segments":
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["segments"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return "manifest.json"
    if how == "segment without checksums":
        path = _segment(store, build_id) / "segment.json"
        meta = json.loads(path.read_text())
        del meta["files"]
        path.write_text(json.dumps(meta))
        return "segment.json"
    if how == "missing segment":
        shutil.rmtree(_segment(store, build_id))
        return "segments/"
    if how == "binary CURRENT":
        store.pointer.write_bytes(b"\xff\xfe\x00garbage")
        return "CURRENT"
    if how == "NUL in CURRENT":
        store.pointer.write_text(build_id + "\x00")
        return "CURRENT"
    if how == "CURRENT a folder":
        store.pointer.unlink()
        store.pointer.mkdir()
        return "CURRENT"
    if how == "CURRENT a path":
        store.pointer.write_text("../../etc")
        return "CURRENT"
    if how == "build id is a file":
        (store.builds_dir / "20990101T000000-ffff").write_text("not a folder")
        store.pointer.write_text("20990101T000000-ffff\n")
        return "20990101T000000-ffff"
    if how == "missing build":
        store.pointer.write_text("20990101T000000-0000\n")
        return "20990101T000000-0000"
    if how == "garbage manifest":
        (folder / "manifest.json").write_text("[1, 2]")
        return "manifest.json"
    raise AssertionError(how)


DAMAGES = ["deleted data file", "manifest without segments", "segment without checksums",
           "missing segment", "binary CURRENT", "NUL in CURRENT",
           "CURRENT a folder", "CURRENT a path", "build id is a file", "missing build",
           "garbage manifest"]


@pytest.mark.parametrize("how", DAMAGES)
def test_every_damaged_index_at_start_is_one_error_naming_the_file(fake_service, how):
    report = fake_service.build()
    name = _damage(fake_service.store, report.build_id, how)
    with pytest.raises(IndexNotReady) as info:
        QAService(fake_service.settings, embedder=HashingEmbedder()).ask("Alpha?")
    assert name in info.value.message and "qa-service build" in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize("how", DAMAGES + ["other model"])
def test_the_last_good_index_keeps_serving_when_a_new_one_cannot_be_opened(
        fake_service, fake_settings, how, caplog):
    first = fake_service.build()
    assert fake_service.ask("When was the Alpha treaty signed?")["index_version"] == first.build_id
    # A build from elsewhere (another process, the API) that cannot be opened.
    second = QAService(fake_settings, embedder=HashingEmbedder()).build(force=True)
    if how == "other model":
        QAService(fake_settings, embedder=HashingEmbedder(dimension=32)).build()
        name = "test-hashing-32"
    else:
        name = _damage(fake_service.store, second.build_id, how)
    fake_service.settle()
    answer = fake_service.ask("When was the Alpha treaty signed?")
    assert answer["index_version"] == first.build_id and answer["citations"]
    health = fake_service.health()
    assert health["status"] == "degraded" and health["index"]["version"] == first.build_id
    assert name in health["reason"] and first.build_id in health["reason"]
    assert name in caplog.text and "last good index" in caplog.text
    # Fixed by the next build: CURRENT changes, loading is tried again.
    if how in ("CURRENT a folder",):
        fake_service.store.pointer.rmdir()
    third = fake_service.build() if how != "other model" else QAService(
        fake_settings, embedder=HashingEmbedder()).build()
    fake_service.settle()
    assert fake_service.ask("Alpha?")["index_version"] == third.build_id
    assert fake_service.health()["status"] == "ok" and "reason" not in fake_service.health()


def _read_only(monkeypatch):
    """The index folder turns read-only (EROFS), as a remount does; root ignores chmod."""
    import errno

    from qa_service import store

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(src))

    monkeypatch.setattr(store.os, "rename", refuse)


def test_a_read_only_index_folder_is_one_error_and_the_old_index_serves(fake_service,
                                                                        monkeypatch):
    first = fake_service.build()
    fake_service.ask("Alpha?")
    _read_only(monkeypatch)
    with pytest.raises(IndexWriteError, match="Read-only file system. Make the folder writable"):
        fake_service.build(force=True)
    monkeypatch.undo()
    assert fake_service.ask("Alpha?")["index_version"] == first.build_id
    assert not list(fake_service.store.builds_dir.glob(".tmp-*"))


def test_read_only_index_in_the_cli_and_the_api(fake_settings, monkeypatch):
    from dataclasses import replace

    from click.testing import CliRunner

    from qa_service.cli import main
    from qa_service.web import create_app

    settings = replace(fake_settings, admin_token="t")
    service = QAService(settings, embedder=HashingEmbedder())
    service.build()
    _read_only(monkeypatch)
    monkeypatch.setattr("qa_service.cli._service", lambda s: QAService(s, HashingEmbedder()))
    result = CliRunner().invoke(main, ["build", "--force"], env={
        "QA_INDEX_DIR": str(settings.index_dir), "QA_SOURCES_DIR": str(settings.sources_dir)})
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Read-only file system" in result.output
    with (settings.sources_dir / "alpha.txt").open("a") as handle:  # something to write
        handle.write("A later sentence about the Alpha treaty.\n")
    response = create_app(settings, service).test_client().post(
        "/api/index/rebuild", headers={"Authorization": "Bearer t"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "index_write_failed"
    assert "Read-only file system" in response.get_json()["error"]["message"]


def test_a_build_killed_just_before_the_pointer_swap_leaves_no_temp_file(fake_settings):
    import subprocess
    import sys

    script = f"""
import os, signal
from pathlib import Path
from qa_service import store
from qa_service.config import Settings
from qa_service.embedding import HashingEmbedder
from qa_service.service import QAService
store.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
settings = Settings(sources_dir=Path({str(fake_settings.sources_dir)!r}),
                    index_dir=Path({str(fake_settings.index_dir)!r}))
QAService(settings, embedder=HashingEmbedder()).build()
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert done.returncode == -9
    index_dir = fake_settings.index_dir
    assert list(index_dir.glob(".CURRENT.*.tmp"))  # what the kill left
    QAService(fake_settings, embedder=HashingEmbedder()).build()
    assert not list(index_dir.glob(".CURRENT.*.tmp"))
    assert not list((index_dir / "builds").glob(".tmp-*"))


def test_a_deleted_current_keeps_the_last_good_index_and_says_so(fake_service):
    first = fake_service.build()
    fake_service.ask("Alpha?")
    fake_service.store.pointer.unlink()
    fake_service.settle()
    assert fake_service.ask("Alpha?")["index_version"] == first.build_id
    health = fake_service.health()
    assert health["status"] == "degraded" and "qa-service build" in health["reason"]
