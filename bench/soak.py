"""Soak: rebuilds under load, citations checked against their own index version (`make soak`).

Starts `qa-service serve` (waitress, the real model) on 127.0.0.1 as a separate process over a
copy of the sources, then asks questions from several client threads while it runs at least
`--rebuilds` rebuilds through POST /api/index/rebuild, every other one after editing a source in
place (a sentence inserted at its start, so every later offset moves). Every citation of every
answer is checked against `GET /api/sources/{id}?version=<index_version>`:
`text[start:end] == quote`. Bounded: loopback only, a fixed number of rebuilds, a time limit.

Prints requests, failures by kind, citations checked and latency; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT.parent / "shared" / "eval" / "dev.jsonl"
TOKEN = "soak-token"
FALLBACK_QUESTIONS = [
    "When were diplomatic relations between the Soviet Union and China established?",
    "How many Su-27SK fighters were to be produced in China under the 1996 license?",
    "Which engine does the J-10 use?",
    "What did the 1996 license contract cover?",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, method: str, path: str, body: dict | None = None,
          headers: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _questions() -> list[str]:
    if GOLD.exists():
        items = [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]
        return [item["question"] for item in items if "question" in item][:40]
    return FALLBACK_QUESTIONS


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.failures: Counter[str] = Counter()
        self.examples: list[str] = []
        self.citations = 0
        self.versions: set[str] = set()
        self.latencies: list[float] = []

    def fail(self, kind: str, detail: str) -> None:
        with self.lock:
            self.failures[kind] += 1
            if len(self.examples) < 10:
                self.examples.append(f"{kind}: {detail[:300]}")


def client(base: str, questions: list[str], stop: threading.Event, tally: Tally, seed: int) -> None:
    i = seed
    while not stop.is_set():
        question = questions[i % len(questions)]
        i += 1
        began = time.perf_counter()
        try:
            status, body = _call(base, "POST", "/api/answer", {"question": question})
        except Exception as exc:  # noqa: BLE001 - a soak counts every kind of failure
            tally.fail("answer request", repr(exc))
            continue
        with tally.lock:
            tally.requests += 1
            tally.latencies.append(time.perf_counter() - began)
        if status != 200:
            tally.fail(f"answer {status}", json.dumps(body))
            continue
        version = body["index_version"]
        with tally.lock:
            tally.versions.add(version)
        for citation in body["citations"]:
            path = "/api/sources/" + urllib.parse.quote(citation["source"], safe="")
            try:
                status, source = _call(base, "GET", f"{path}?version={version}")
            except Exception as exc:  # noqa: BLE001
                tally.fail("source request", repr(exc))
                continue
            with tally.lock:
                tally.requests += 1
                tally.citations += 1
            if status != 200:
                tally.fail(f"source {status}", json.dumps(source))
            elif source["text"][citation["start"]:citation["end"]] != citation["quote"]:
                tally.fail("citation mismatch", f"{citation['source']}@{version} "
                                                f"{citation['start']}-{citation['end']}")


def edit_in_place(sources: Path, round_no: int) -> str:
    """Insert a sentence at the start of one source's body, rewriting the file in place."""
    files = sorted(p for p in sources.iterdir() if p.suffix in (".txt", ".md"))
    target = files[round_no % len(files)]
    text = target.read_text(encoding="utf-8")
    line = f"Soak edit number {round_no} was made to this document during a rebuild.\n\n"
    if text.startswith("---\n"):
        end = text.index("\n---", 4) + len("\n---\n")
        text = text[:end] + line + text[end:]
    else:
        text = line + text
    with target.open("w", encoding="utf-8") as handle:  # in place: same inode, truncated
        handle.write(text)
    return target.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rebuilds", type=int, default=12)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between rebuilds")
    parser.add_argument("--time-limit", type=float, default=900)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qa-soak-"))
    sources = work / "sources"
    shutil.copytree(ROOT / "sources", sources)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(QA_SOURCES_DIR=str(sources), QA_INDEX_DIR=str(work / "index"),
               QA_ADMIN_TOKEN=TOKEN, QA_PORT=str(port), QA_HOST="127.0.0.1",
               QA_KEEP_BUILDS="3", HF_HUB_OFFLINE="1")
    cli = [sys.executable, "-m", "qa_service"]  # this checkout's code (PYTHONPATH) first
    began = time.monotonic()
    subprocess.run([*cli, "build"], env=env, check=True, capture_output=True)
    server_log = (work / "serve.log").open("w")  # a file: a full pipe would stall the server
    server = subprocess.Popen([*cli, "serve"], env=env, stdout=server_log, stderr=server_log)
    base = f"http://127.0.0.1:{port}"
    tally = Tally()
    stop = threading.Event()
    rebuilds: list[str] = []
    try:
        for _ in range(600):
            try:
                if _call(base, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("the server did not start within 5 minutes")
        threads = [threading.Thread(target=client, args=(base, _questions(), stop, tally, n * 7),
                                    daemon=True) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        for round_no in range(args.rebuilds):
            if time.monotonic() - began > args.time_limit:
                break
            time.sleep(args.pause)
            edited = edit_in_place(sources, round_no) if round_no % 2 == 0 else None
            status, report = _call(base, "POST", "/api/index/rebuild",
                                   headers={"Authorization": f"Bearer {TOKEN}"})
            if status != 200:
                tally.fail(f"rebuild {status}", json.dumps(report))
                continue
            rebuilds.append(f"{report['build_id']} (changed {report['changed']}, embedded "
                            f"{report['embedded']}{', edited ' + edited if edited else ''})")
        time.sleep(args.pause)
        stop.set()
        for thread in threads:
            thread.join(timeout=180)
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()
        warnings = [line for line in (work / "serve.log").read_text().splitlines()
                    if "WARNING" in line or "ERROR" in line or "Traceback" in line]
        shutil.rmtree(work, ignore_errors=True)

    lat = sorted(tally.latencies)
    failed = sum(tally.failures.values())
    print(f"soak: {len(rebuilds)} rebuilds ({sum('edited' in r for r in rebuilds)} after an "
          f"in-place edit), {args.clients} clients, {time.monotonic() - began:.0f} s")
    for line in rebuilds:
        print(f"  rebuild {line}")
    print(f"requests: {tally.requests}, failed: {failed}"
          + (f" ({dict(tally.failures)})" if failed else ""))
    print(f"citations verified against their own index version: {tally.citations}, "
          f"index versions answered from: {len(tally.versions)}")
    if lat:
        print(f"answer latency: median {statistics.median(lat) * 1000:.0f} ms, "
              f"p95 {lat[int(len(lat) * 0.95)] * 1000:.0f} ms")
    for example in tally.examples:
        print(f"  {example}")
    print(f"server log: {len(warnings)} warning/error lines")
    for line in warnings[:10]:
        print(f"  {line[:200]}")
    return 1 if failed or len(rebuilds) < args.rebuilds else 0


if __name__ == "__main__":
    sys.exit(main())
