"""Adding sources: PDF, HTML and Markdown in; only new passages embedded; atomic swaps that
never disturb a running service, even when a build is killed half-way."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa_service.cli import main
from qa_service.config import Settings
from qa_service.service import QAService
from qa_service.web import create_app

from .conftest import SOURCES

SEEDS = len([p for p in SOURCES.iterdir() if p.is_file()])  # the shipped sources

MARKDOWN = """---
title: Kestrel Field Notes
author: Mira Osei
date: 2024-03-05
---
# Kestrel notes

![diagram](https://example.org/d.png)
The Kestrel-9 radar was first tested at the Orlik range in April 2023. Engineers said the test
lasted eleven days.
"""

HTML = """<!doctype html><html><head><title>Amur Ferry Report</title>
<meta name="author" content="Lev Tarasov"><meta name="date" content="2021-08-14"></head>
<body><nav>Home | About | Contact</nav><article><h1>Amur Ferry Report</h1>
<p>The Blagoveshchensk ferry carried 41,000 passengers across the Amur in 2019, according to
the regional transport office.</p><p>Its operator, Amur Lines, plans a second vessel.</p>
</article><footer>Copyright 2021</footer></body></html>"""


def make_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle("Harbin Depot Inventory")
    c.setAuthor("Depot Audit Office")
    pages = [
        ["The Harbin depot inventory was audited in 2018.",
         "The audit covered rail stock and fuel reserves."],
        ["The depot held 312 diesel locomotives at the end of the audit.",
         "Most of them were built before 1990."],
        ["The auditors recommended a new fuel store.", "It was approved in 2019."],
    ]
    for number, lines in enumerate(pages, start=1):
        c.drawString(72, 800, "DEPOT AUDIT OFFICE REPORT")  # a running head on every page
        for i, line in enumerate(lines):
            c.drawString(72, 760 - 20 * i, line)
        c.drawString(300, 40, str(number))
        c.showPage()
    c.save()


@pytest.fixture
def project(tmp_path: Path, real_embedder):
    """A copy of the project's sources with a built index, and a service on it."""
    shutil.copytree(SOURCES, tmp_path / "sources")
    settings = Settings(sources_dir=tmp_path / "sources", index_dir=tmp_path / "index",
                        admin_token="tok")
    service = QAService(settings, embedder=real_embedder)
    service.build()
    return service


def _add_three(sources: Path) -> None:
    (sources / "kestrel-notes.md").write_text(MARKDOWN, encoding="utf-8")
    (sources / "amur-ferry.html").write_text(HTML, encoding="utf-8")
    make_pdf(sources / "harbin-depot.pdf")


def _chunks(service: QAService, names: set[str]) -> int:
    manifest = service.store.read_manifest()
    return sum(s["chunks"] for s in manifest["sources"] if s["source"] in names)


def test_adding_three_formats_embeds_only_their_passages(project):
    _add_three(project.settings.sources_dir)
    report = project.build()
    new = {"kestrel-notes.md", "amur-ferry.html", "harbin-depot.pdf"}
    assert (report.added, report.changed, report.removed, report.unchanged) == (3, 0, 0, SEEDS)
    assert report.embedded == _chunks(project, new) > 0
    assert not report.skipped

    md = project.ask("When was the Kestrel-9 radar first tested?")
    assert md["short_answer"] == "April 2023"
    assert md["citations"][0]["source"] == "kestrel-notes.md"

    html = project.ask("How many passengers did the Blagoveshchensk ferry carry in 2019?")
    assert html["short_answer"] == "41,000"
    assert html["citations"][0]["source"] == "amur-ferry.html"
    sources = {s["source"]: s for s in project.list_sources()}
    assert sources["amur-ferry.html"]["title"] == "Amur Ferry Report"
    assert "Home | About" not in project.get_source("amur-ferry.html")["text"]

    pdf = project.ask("How many diesel locomotives did the Harbin depot hold?")
    assert pdf["short_answer"] == "312"
    citation = pdf["citations"][0]
    assert citation["source"] == "harbin-depot.pdf" and citation["page"] == 2
    assert sources["harbin-depot.pdf"]["title"] == "Harbin Depot Inventory"
    pdf_text = project.get_source("harbin-depot.pdf")["text"]
    assert "DEPOT AUDIT OFFICE REPORT" not in pdf_text and "\n2\n" not in pdf_text

    # Nothing changed: nothing embedded. A removed source takes its passages with it.
    assert project.build().embedded == 0
    (project.settings.sources_dir / "kestrel-notes.md").unlink()
    report = project.build()
    assert (report.removed, report.embedded) == (1, 0)
    assert "kestrel-notes.md" not in {s["source"] for s in project.list_sources()}


def test_a_changed_source_embeds_only_its_new_passages(project):
    path = project.settings.sources_dir / "rostec-cooperation-with-china.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n\nThe office moved to a new "
                    "building in Beijing in 2024.\n", encoding="utf-8")
    report = project.build()
    assert report.changed == 1 and report.unchanged == SEEDS - 1
    assert 1 <= report.embedded <= 2  # the last window or two of that document only


def test_corrupt_pdf_is_named_and_skipped_through_the_cli(project):
    sources = project.settings.sources_dir
    (sources / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage")
    (sources / "notes.xyz").write_text("whatever", encoding="utf-8")
    (sources / "kestrel-notes.md").write_text(MARKDOWN, encoding="utf-8")
    env = {"QA_SOURCES_DIR": str(sources), "QA_INDEX_DIR": str(project.settings.index_dir)}
    result = CliRunner().invoke(main, ["build"], env=env)
    assert result.exit_code == 3, result.output
    assert "skipped   broken.pdf: broken.pdf: not a readable PDF" in result.output
    assert "skipped   notes.xyz" in result.output and "unsupported file type" in result.output
    assert "1 added" in result.output and f"{SEEDS} unchanged" in result.output
    project.settle()  # the build is opened in the background
    assert "kestrel-notes.md" in {s["source"] for s in project.list_sources()}


def test_add_command_copies_then_builds(project, tmp_path):
    source = tmp_path / "kestrel-notes.md"
    source.write_text(MARKDOWN, encoding="utf-8")
    env = {"QA_SOURCES_DIR": str(project.settings.sources_dir),
           "QA_INDEX_DIR": str(project.settings.index_dir)}
    runner = CliRunner()
    result = runner.invoke(main, ["add", str(source)], env=env)
    assert result.exit_code == 0, result.output
    assert "added: kestrel-notes.md" in result.output and "1 added" in result.output
    again = runner.invoke(main, ["add", str(source)], env=env)
    assert "already there: kestrel-notes.md" in again.output and "0 passages" in again.output
    source.write_text(MARKDOWN + "\nMore.", encoding="utf-8")
    clash = runner.invoke(main, ["add", str(source)], env=env)
    assert clash.exit_code == 1 and "exists with other content" in clash.output
    offline = runner.invoke(main, ["add", "http://127.0.0.1:9/report.pdf"], env=env)
    assert offline.exit_code == 1 and "cannot download" in offline.output


def test_a_build_from_elsewhere_is_picked_up_without_restart(project, real_embedder):
    before = project.ask("When was the Kestrel-9 radar first tested?")
    assert before["answerable"] is False
    (project.settings.sources_dir / "kestrel-notes.md").write_text(MARKDOWN, encoding="utf-8")
    other = QAService(project.settings, embedder=real_embedder)  # "another terminal"
    report = other.build()
    # The first question after the commit is not kept waiting for the load: the index in
    # service answers it while the new one opens in the background.
    during = project.ask("When was the Kestrel-9 radar first tested?")
    assert during["index_version"] in (before["index_version"], report.build_id)
    project.settle()
    after = project.ask("When was the Kestrel-9 radar first tested?")
    assert after["index_version"] == report.build_id != before["index_version"]
    assert after["short_answer"] == "April 2023"


def _lock_is_held(index_dir: Path) -> bool:
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_killed_build_leaves_the_previous_index_serving(project):
    settings = project.settings
    old = project.store.current_build_id()
    # Enough new text that embedding takes a while, so the kill lands inside the build.
    body = "\n\n".join(f"Depot {i} in region {i % 17} stored {i * 3} crates of spare parts "
                       f"for the year {1990 + i % 30}." for i in range(3000))
    (settings.sources_dir / "depots.txt").write_text(body, encoding="utf-8")
    env = dict(os.environ, QA_SOURCES_DIR=str(settings.sources_dir),
               QA_INDEX_DIR=str(settings.index_dir))
    env.pop("QA_ADMIN_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "qa_service", "build"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _lock_is_held(settings.index_dir):
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)
        assert proc.poll() is None, "the build ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert project.store.current_build_id() == old
    fresh = QAService(settings, embedder=project.embedder)
    result = fresh.ask("How many AL-31F engines were ordered in the February contract?")
    assert result["index_version"] == old and result["short_answer"] == "140"
    # The next build is not in the way of anything the killed one left.
    (settings.sources_dir / "depots.txt").unlink()
    report = fresh.build(force=True)  # the sources are the old build's again: force a write
    assert report.build_id != old
    assert not list(fresh.store.builds_dir.glob(".tmp-*"))


def test_questions_during_a_rebuild_all_succeed(project, artifacts):
    import urllib.request

    import waitress

    app = create_app(project.settings, project)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=6)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"

    def post(path: str, body: dict | None, headers: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            url + path, data=json.dumps(body or {}).encode(), method="POST",
            headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    results: list[tuple[int, dict]] = []
    stop = threading.Event()

    def asker() -> None:
        for _ in range(150):  # bounded in count and, through stop, in time
            if stop.is_set():
                break
            results.append(post("/api/answer", {"question": "Which engine does the J-10 use?"}))

    _add_three(project.settings.sources_dir)
    threads = [threading.Thread(target=asker) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        status, report = post("/api/index/rebuild", None, {"Authorization": "Bearer tok"})
        time.sleep(0.3)
        code, answer = post("/api/answer", {"question": "When was the Kestrel-9 radar first tested?"})
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        server.close()
    assert status == 200 and report["added"] == 3
    new = {"kestrel-notes.md", "amur-ferry.html", "harbin-depot.pdf"}
    assert report["embedded"] == _chunks(project, new)  # only the new documents' passages
    assert code == 200 and answer["citations"][0]["source"] == "kestrel-notes.md"
    assert results and all(code == 200 for code, _ in results), [r for r in results if r[0] != 200]
    assert all(body["short_answer"] == "AL-31FN" for _, body in results)
    versions = {body["index_version"] for _, body in results}
    assert report["build_id"] in versions  # the swap happened while questions kept coming
    (artifacts / "rebuild-under-load.json").write_text(json.dumps(
        {"requests": len(results), "versions": sorted(versions), "rebuild": report}, indent=1))


def test_a_rebuild_with_nothing_changed_embeds_and_writes_nothing(tmp_path):
    from qa_service.config import Settings
    from qa_service.embedding import HashingEmbedder

    from .conftest import TINY

    sources = tmp_path / "sources"
    sources.mkdir()
    for name, text in TINY.items():
        (sources / name).write_text(text, encoding="utf-8")
    settings = Settings(sources_dir=sources, index_dir=tmp_path / "index")
    first = QAService(settings, embedder=HashingEmbedder()).build()

    class NoModel(HashingEmbedder):  # a rebuild with nothing changed must not need the model
        @property
        def dimension(self) -> int:
            raise AssertionError("the model was loaded")

        def embed_documents(self, texts, progress=None):
            raise AssertionError("something was embedded")

    (settings.index_dir / "builds" / ".tmp-left-by-a-killed-build").mkdir()
    service = QAService(settings, embedder=NoModel())
    again = service.build()
    assert again.build_id == first.build_id and again.unchanged == 2
    assert again.embedded == 0 and again.added == again.changed == again.removed == 0
    assert [p.name for p in (settings.index_dir / "builds").iterdir()] == [first.build_id]
    other = QAService(Settings(sources_dir=sources, index_dir=settings.index_dir,
                               chunk_sentences=3), embedder=HashingEmbedder()).build()
    assert other.build_id != first.build_id  # other settings: a new build


def test_a_rebuild_reads_only_the_files_whose_size_or_time_changed(tmp_path, monkeypatch):
    import os
    import time

    from qa_service import service as service_module
    from qa_service.config import Settings
    from qa_service.embedding import HashingEmbedder

    from .conftest import TINY

    sources = tmp_path / "sources"
    sources.mkdir()
    an_hour_ago = time.time() - 3600
    for name, text in TINY.items():
        (sources / name).write_text(text, encoding="utf-8")
        os.utime(sources / name, (an_hour_ago, an_hour_ago))
    settings = Settings(sources_dir=sources, index_dir=tmp_path / "index")
    service = QAService(settings, embedder=HashingEmbedder())
    first = service.build()
    read: list[str] = []
    real_read = service_module.read_document

    def counting(folder, path, *args):
        read.append(path.name)
        return real_read(folder, path, *args)

    monkeypatch.setattr(service_module, "read_document", counting)
    assert service.build().build_id == first.build_id and read == []
    # Touched, not changed: read once, found the same, nothing written.
    os.utime(sources / "beta.md", (an_hour_ago + 60, an_hour_ago + 60))
    assert service.build().build_id == first.build_id and read == ["beta.md"]
    # Changed: read, and a build with one new segment that holds only it.
    read.clear()
    with (sources / "alpha.txt").open("a", encoding="utf-8") as handle:
        handle.write("\nThe Alpha treaty was renewed in 2011.\n")
    os.utime(sources / "alpha.txt", (an_hour_ago + 120, an_hour_ago + 120))
    report = service.build()
    assert sorted(read) == ["alpha.txt", "beta.md"] and report.changed == 1
    manifest = service.store.read_manifest()
    assert len(manifest["segments"]) == 2 and manifest["segments"][0]["deleted"] == [0]
    assert [r.source for r in service.store.segment(manifest["segments"][1]["id"]).records] == [
        "alpha.txt"]
    # A file changed in the moment it was read (same size, same tick) is read again next time.
    read.clear()
    text = (sources / "beta.md").read_text(encoding="utf-8")
    (sources / "beta.md").write_text(text.replace("1987", "1988"), encoding="utf-8")
    assert service.build().changed == 1 and "beta.md" in read
    read.clear()
    assert service.build().changed == 0 and read == ["beta.md"]  # racy: read again, unchanged


def test_removing_sources_masks_their_rows_and_merging_drops_them(fake_service):
    from qa_service import service as service_module

    folder = fake_service.settings.sources_dir
    for i in range(service_module.MAX_SEGMENTS + 1):
        (folder / f"note-{i}.txt").write_text(
            f"Note {i}: the Delta-{i} relay was installed in {1990 + i} at river port {i}.\n",
            encoding="utf-8")
        fake_service.build()
    manifest = fake_service.store.read_manifest()
    # Past MAX_SEGMENTS, the smallest segments were merged: copied, nothing embedded again.
    assert len(manifest["segments"]) <= service_module.MAX_SEGMENTS
    answer = fake_service.ask("When was the Delta-3 relay installed?")
    assert answer["answerable"] and answer["short_answer"] == "1993"
    (folder / "note-3.txt").unlink()
    report = fake_service.build()
    assert report.removed == 1
    sources = {s["source"] for s in fake_service.list_sources()}
    assert "note-3.txt" not in sources and "note-4.txt" in sources
    hits = fake_service.ask("When was the Delta-3 relay installed?", explain=True)["retrieved"]
    assert all("Delta-3" not in h["text"] for h in hits)
