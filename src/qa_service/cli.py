"""The `qa-service` command: a thin click layer over `QAService`.

Domain errors (`QAError`) exit 1 with their message; usage errors exit 2 (click's own).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .config import LIMITS, Settings, settings_help
from .errors import IndexNotReady, QAError


def _settings(**flags: Any) -> Settings:
    try:
        return Settings.from_env(**flags)
    except QAError as exc:
        raise click.ClickException(exc.message) from None


def _service(settings: Settings):
    from .service import QAService

    return QAService(settings)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QAError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(1)


@click.group(
    cls=_Group,
    epilog="Settings (environment variables; flags override them):\n\n\b\n" + settings_help(),
)
@click.version_option(package_name="qa-service")
def main() -> None:
    """Question answering with citations over a folder of source documents."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


_sources_opt = click.option("--sources", "sources_dir", type=click.Path(path_type=Path),
                            help="sources folder [QA_SOURCES_DIR]")
_index_opt = click.option("--index", "index_dir", type=click.Path(path_type=Path),
                          help="index folder [QA_INDEX_DIR]")
_model_opt = click.option("--model", help="embedding model name or path [QA_MODEL]")


def print_build_report(report: Any) -> None:
    for source, status in report.sources:
        click.echo(f"  {status:<9} {source}")
    for skipped in report.skipped:
        click.echo(f"  skipped   {skipped.source}: {skipped.reason}", err=True)
    click.echo(
        f"index {report.build_id}: {report.added} added, {report.changed} changed, "
        f"{report.removed} removed, {report.unchanged} unchanged; {report.chunks} passages, "
        f"{report.embedded} passages and {report.embedded_sentences} sentences embedded "
        f"in {report.took_ms / 1000:.1f} s"
    )


@main.command()
@_sources_opt
@_index_opt
@_model_opt
@click.option("--if-missing", is_flag=True,
              help="do nothing when a usable index is already built")
@click.option("--force", is_flag=True,
              help="write a new build even when nothing changed (the default keeps the current)")
@click.pass_context
def build(ctx: click.Context, if_missing: bool, force: bool, **flags: Any) -> None:
    """Build (or update) the index from the sources folder.

    Exits 0 when every file was indexed, 3 when some were skipped (each is named).
    """
    service = _service(_settings(**flags))
    if if_missing:
        try:
            if service.store.current_build_id() is not None:
                data = service.store.load(service.embedder.model_id)
                click.echo(f"index {data.build_id} already built; nothing to do")
                return
        except IndexNotReady as exc:  # damaged, another format or model: build a new one
            click.echo(f"the index cannot be used ({exc.message}); building a new one", err=True)
    report = _build_with_progress(service, force)
    print_build_report(report)
    if report.skipped:
        ctx.exit(3)


@main.command()
@_index_opt
@_model_opt
def check(**flags: Any) -> None:
    """Read every byte of the index in service and compare each file with the sha256 written
    for it (opening the index checks sizes only). Exits 1 naming the first file that differs."""
    service = _service(_settings(**flags))
    store = service.store
    build_id = store.current_build_id()
    manifest = store.read_manifest(build_id)
    assert build_id is not None
    segments = store.verify(build_id, manifest, service.embedder.model_id, full=True)
    files = sum(len(s.meta["files"]) for s in segments)
    size = sum(f["bytes"] for s in segments for f in s.meta["files"].values())
    click.echo(f"index {build_id}: {len(segments)} segments, {files} files, "
               f"{size / 2**20:.1f} MB read; every file matches its checksum")


class _BuildProgress:
    """Progress of a build on stderr with an estimate of the time left: a bar on a terminal,
    otherwise a line at most every 10 s (logs of services and CI)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.stage = ""
        self.began = 0.0
        self.last_line = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, stage: str, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if stage != self.stage:
            self.close()
            self.stage, self.began, self.last_line = stage, now, now
            if self.tty:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=stage, unit="text" if "embed" in stage
                                else "file", file=sys.stderr)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif now - self.last_line >= 10 or (done == total and now - self.began >= 10):
            self.last_line = now
            rate = done / max(now - self.began, 1e-9)
            left = (total - done) / rate if rate else float("inf")
            click.echo(f"{stage}: {done}/{total}, about {_duration(left)} left", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "an unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _build_with_progress(service: Any, force: bool = False) -> Any:
    progress = _BuildProgress()
    try:
        return service.build(progress=progress, force=force)
    except KeyboardInterrupt:
        progress.close()
        click.echo("Build cancelled: the index in service is unchanged and the build lock is "
                   "released.", err=True)
        sys.exit(130)
    finally:
        progress.close()


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON response")
@click.option("--top-k", type=click.IntRange(1, LIMITS.top_k), help="passages to retrieve")
@click.option("--source", "only", multiple=True, help="search only this source id (repeatable)")
@_index_opt
@_model_opt
def ask(question: str, as_json: bool, top_k: int | None,
        only: tuple[str, ...], **flags: Any) -> None:
    """Answer QUESTION from the index, with citations."""
    service = _service(_settings(**flags))
    result = service.ask(question, top_k=top_k, sources=list(only) or None)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    click.echo(result["answer"])
    if result["short_answer"]:
        click.echo(f"\nShort answer: {result['short_answer']}")
    click.echo(f"Confidence: {result['confidence']:.2f}")
    heading = "Sources" if result["answerable"] else "Nearest passages"
    if result["citations"]:
        click.echo(f"\n{heading}:")
    for c in result["citations"]:
        page = f", p. {c['page']}" if c.get("page") else ""
        click.echo(f"[{c['n']}] {c['title']} ({c['source']}{page}, chars {c['start']}-{c['end']})")
        click.echo(f"    “{c['quote']}”")


@main.command()
@click.argument("items", nargs=-1, required=True, metavar="PATH_OR_URL...")
@click.option("--no-build", is_flag=True, help="copy only; do not rebuild the index")
@_sources_opt
@_index_opt
@_model_opt
@click.pass_context
def add(ctx: click.Context, items: tuple[str, ...], no_build: bool, **flags: Any) -> None:
    """Copy files (or download URLs) into the sources folder, then rebuild the index."""
    import tempfile

    from .sources import copy_into

    settings = _settings(**flags)
    for item in items:
        if item.startswith(("http://", "https://")):
            with tempfile.TemporaryDirectory() as folder:
                path, name = _download(item, Path(folder))
                source, copied = copy_into(settings.sources_dir, path, name,
                                           settings.max_source_bytes)
        else:
            source, copied = copy_into(settings.sources_dir, Path(item),
                                       max_bytes=settings.max_source_bytes)
        click.echo(f"{'added' if copied else 'already there'}: {source}")
    if no_build:
        return
    report = _build_with_progress(_service(settings))
    print_build_report(report)
    if report.skipped:
        ctx.exit(3)


def _download(url: str, folder: Path) -> tuple[Path, str]:
    import re
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    from .errors import SourceError

    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 - http(s) only
            data = response.read(50 * 1024 * 1024)
            kind = response.headers.get_content_type()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(
            f"cannot download {url} ({exc}); without network access, save the page or PDF "
            "and add the file instead"
        ) from None
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", urlparse(url).path.strip("/").split("/")[-1] or
                  urlparse(url).netloc).strip("-") or "page"
    suffix = {"application/pdf": ".pdf", "text/html": ".html", "text/plain": ".txt",
              "text/markdown": ".md"}.get(kind, Path(stem).suffix or ".html")
    name = stem if stem.lower().endswith(suffix) else f"{Path(stem).stem}{suffix}"
    path = folder / name
    path.write_bytes(data)
    return path, name


@main.command()
@click.option("--host", help="address to listen on [QA_HOST]")
@click.option("--port", type=int, help="port [QA_PORT]")
@click.option("--threads", type=int, help="threads per worker process [QA_THREADS]")
@click.option("--workers", type=int, help="worker processes; 0: one per core [QA_WORKERS]")
@click.option("--dev", is_flag=True, help="Flask's development server instead of waitress")
@_sources_opt
@_index_opt
@_model_opt
def serve(dev: bool, **flags: Any) -> None:
    """Serve the chat page and the JSON API (waitress, model and index loaded first)."""
    from .web import create_app

    settings = _settings(**flags)
    if dev:
        service = _service(settings)
        service.warm_up()
        app = create_app(settings, service)
        click.echo(f"serving on http://{settings.host}:{settings.port}/ (development)", err=True)
        from werkzeug.serving import run_simple

        # Not app.run(): it turns Werkzeug's debugger (a Python console in the browser) on
        # whenever FLASK_DEBUG=1 is set. The debugger is never served.
        app.debug = False
        run_simple(settings.host, settings.port, app, threaded=True, use_debugger=False,
                   use_reloader=False)
        return
    import logging

    from .server import serve as serve_workers
    from .server import worker_count

    logging.basicConfig(level=logging.INFO)  # waitress's and the service's warnings reach stderr
    # The index is loaded once, before the workers fork, and shared by them (copy-on-write):
    # a damaged one stops here with one line. Each worker loads the model itself.
    service = _service(settings)
    if service.store.current_build_id() is not None:
        service.snapshot()

    def make_app():
        service.warm_up()
        return create_app(settings, service)

    def ready(address: str) -> None:
        click.echo(f"serving on {address} ({worker_count(settings)} worker process(es), "
                   f"{settings.threads} threads each)", err=True)

    serve_workers(settings, make_app, ready)


@main.command(name="eval")
@click.argument("gold", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
@click.option("--compare", is_flag=True, help="also score plain dense (FAISS-only) retrieval")
@click.option("--cv", is_flag=True,
              help="refit the answer model leaving each document out; report held-out figures")
@click.option("--log-features", type=click.Path(dir_okay=False, path_type=Path),
              help="write every candidate's features and label as JSON lines to this file")
@click.option("--apart", type=click.Path(dir_okay=False, path_type=Path),
              help="with --cv: also report this gold file's questions and all the others apart")
@_sources_opt
@_index_opt
@_model_opt
def eval_command(gold: tuple[Path, ...], as_json: bool, compare: bool, cv: bool,
                 log_features: Path | None, apart: Path | None, **flags: Any) -> None:
    """Score gold sets (shared/eval/dev.jsonl format) through the API's code path.

    With --cv, figures come from leave-one-document-out cross-validation of the answer model
    (the questions of each document answered by weights fitted without them).
    """
    from .evaluation import evaluate, format_calibration, format_report, load_gold

    service = _service(_settings(**flags))
    items = [item for path in gold for item in load_gold(path)]
    texts = {d.source: d.text for d in service.snapshot().data.documents.values()}
    if cv or log_features:
        _cross_validated(service, gold, texts, as_json, log_features, cv, apart)
        return
    service.ask("warm up")  # the first question pays for loading; keep it out of latency
    reports = [evaluate(items, service.ask, texts, mode="hybrid")]
    if compare:
        reports.append(evaluate(items, service.ask, texts, mode="dense"))
    if as_json:
        click.echo(json.dumps(
            {r.mode: {"figures": r.figures(), "misses": r.misses,
                      "calibration": r.calibration} for r in reports}, indent=2
        ))
        return
    click.echo(format_report(reports))
    click.echo("\n" + format_calibration(reports[0]))
    misses = reports[0].misses
    click.echo(f"\n{len(misses)} misses ({reports[0].mode}):" if misses else "\nno misses")
    for miss in misses:
        click.echo(f"  - {miss}")


def _examples(service: Any, gold: tuple[Path, ...], texts: dict[str, str]) -> dict[Path, list[Any]]:
    from .evaluation import load_gold
    from .training import prepare_examples

    return {path: prepare_examples(load_gold(path), service.prepare, texts) for path in gold}


def _cross_validated(service: Any, gold: tuple[Path, ...], texts: dict[str, str], as_json: bool,
                     log_features: Path | None, cv: bool, apart: Path | None = None) -> None:
    from .training import cross_validate, figures, format_cv, reliability

    snap = service.snapshot()
    by_file = _examples(service, gold, texts)
    examples = [ex for exs in by_file.values() for ex in exs]
    if log_features:
        from .answering import Features

        with log_features.open("w", encoding="utf-8") as out:
            for ex in examples:
                for feats, label in zip(ex.prepared.features, ex.labels()):
                    row = dict(zip(Features.names(), feats.vector().round(4).tolist()))
                    out.write(json.dumps({"id": ex.id, "group": ex.group, "label": label, **row}) + "\n")
        click.echo(f"features of {len(examples)} questions written to {log_features}", err=True)
    if not cv:
        return
    outcomes = cross_validate(examples, snap.corpus, snap.data.documents)
    by_set = {"all": figures(outcomes)}
    if apart is not None:
        held = {id(ex) for path, exs in by_file.items() if path.resolve() == apart.resolve() for ex in exs}
        by_set[f"all but {apart.stem}"] = figures([o for o in outcomes if id(o.example) not in held])
    for path, exs in by_file.items():
        ids = {id(ex) for ex in exs}
        by_set[path.stem] = figures([o for o in outcomes if id(o.example) in ids])
    table = reliability(outcomes)
    if as_json:
        misses = [{"id": o.example.id, "question": o.example.prepared.question.text,
                   "answers": o.example.answers, "answerable": o.example.answerable,
                   "got": o.result["answer"][:200], "short": o.result["short_answer"],
                   "confidence": o.confidence} for o in outcomes
                  if o.result["answerable"] != o.example.answerable or not o.would_be_right
                  and o.example.answerable]
        click.echo(json.dumps({"figures": by_set, "reliability": table, "misses": misses}, indent=1))
        return
    click.echo(format_cv(by_set, table))


@main.command()
@click.argument("gold", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(__file__).parent / "answering" / "model.json", show_default=True,
              help="where to write the fitted answer model")
@_sources_opt
@_index_opt
@_model_opt
def train(gold: tuple[Path, ...], out: Path, **flags: Any) -> None:
    """Fit the answer model (ranker, confidence, threshold) on gold sets over the current index.

    Cross-validates first (leave one document out) and stores those figures in the model file
    with the command and the data that produced it.
    """
    from .training import cross_validate, figures, fit, model_info

    settings = _settings(**flags)
    service = _service(settings)
    snap = service.snapshot()
    texts = {d.source: d.text for d in snap.data.documents.values()}
    examples = [ex for exs in _examples(service, gold, texts).values() for ex in exs]
    held_out = figures(cross_validate(examples, snap.corpus, snap.data.documents))
    command = "qa-service train " + " ".join(str(p) for p in gold)
    scorer = fit(examples, snap.corpus, snap.data.documents,
                 model_info(command, gold, settings.sources_dir, held_out))
    scorer.save(out)
    click.echo(json.dumps(held_out, indent=1))
    click.echo(f"answer model written to {out} (threshold {scorer.threshold:.3f})", err=True)


@main.command(name="squad")
@click.argument("squad_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--into", "into", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="sources folder to write the article into")
@click.option("--gold", "gold_out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="gold file (JSON lines) to write the questions to")
def squad_command(squad_json: Path, into: Path, gold_out: Path) -> None:
    """Turn one SQuAD 2.0 article into a source document and a gold set."""
    from .training import squad_to_gold

    source, document, items = squad_to_gold(squad_json)
    into.mkdir(parents=True, exist_ok=True)
    (into / source).write_text(document, encoding="utf-8")
    gold_out.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    unanswerable = sum(1 for i in items if i.get("answerable") is False)
    click.echo(f"{into / source}: {len(items)} questions ({unanswerable} unanswerable) in {gold_out}")


@main.group(cls=_Group)
def feedback() -> None:
    """Readers' verdicts on answers, recorded by the chat page under QA_DATA_DIR."""


@feedback.command(name="export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True,
              help="jsonl: the gold format of shared/eval plus the verdict fields; csv: a table")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="data folder [QA_DATA_DIR]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file instead of standard output")
def feedback_export(fmt: str, data_dir: Path | None, out: Path | None) -> None:
    """Print every verdict, oldest first, for review (e.g. to become gold questions)."""
    from .feedback import FeedbackStore

    settings = _settings(data_dir=data_dir)
    store = FeedbackStore(settings.data_dir)
    text = store.export(fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"{len(store.all())} verdicts written to {out}", err=True)
