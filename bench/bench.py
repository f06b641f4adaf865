"""Speed figures of the service on this machine: `make bench`.

Measures what a user waits for: start-up (model and index loaded), one question through the
service, questions over HTTP (`qa-service serve` on 127.0.0.1 with one worker process and with
one per core, loaded by wrk from a separate process at 1, 4 and 16 connections, bounded in
time), a full index build and a rebuild with nothing changed. Writes bench/results/latest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from qa_service.config import Settings  # noqa: E402
from qa_service.evaluation import load_gold  # noqa: E402
from qa_service.service import QAService  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLD = [ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "tests" / "gold" / "paraphrased.jsonl"]
HTTP_SECONDS = 10  # per wrk run
HTTP_CLIENTS = (1, 4, 16)
WRK_SCRIPT = """
local questions = {QUESTIONS}
local i = 0
request = function()
  i = i + 1
  local body = '{"question": "' .. questions[(i % #questions) + 1] .. '"}'
  return wrk.format("POST", "/api/answer", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.1f %.1f %.1f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.duration, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def questions() -> list[str]:
    out = []
    for path in GOLD:
        if path.exists():
            for item in load_gold(path):
                out.extend([t["question"] for t in item["turns"]] if "turns" in item
                           else [item["question"]])
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_load(settings: Settings, asked: list[str]) -> dict[str, object]:
    """wrk against `qa-service serve`, one worker and one per core, at each client count."""
    import subprocess

    if not shutil.which("wrk"):
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    quoted = ", ".join(json.dumps(q.replace('"', "")) for q in asked)
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "ask.lua"
        script.write_text(WRK_SCRIPT.replace("{QUESTIONS}", "{" + quoted + "}"))
        for workers in sorted({1, os.cpu_count() or 1}):
            port = _free_port()
            env = {**os.environ, "QA_PORT": str(port), "QA_WORKERS": str(workers),
                   "QA_INDEX_DIR": str(settings.index_dir),
                   "QA_SOURCES_DIR": str(settings.sources_dir)}
            server = subprocess.Popen([sys.executable, "-m", "qa_service", "serve"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_healthy(f"http://127.0.0.1:{port}/healthz")
                rows = {}
                for clients in HTTP_CLIENTS:
                    done = subprocess.run(
                        ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{HTTP_SECONDS}s",
                         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"],
                        capture_output=True, text=True, check=True)
                    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
                    n, errors, micros, p50, p95, p99 = line.split()[1:]
                    rows[f"{clients}_clients"] = {
                        "requests": int(n), "errors": int(errors),
                        "per_second": round(int(n) / (int(micros) / 1e6), 1),
                        "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}
                out[f"{workers}_workers"] = rows
            finally:
                server.terminate()
                server.wait(timeout=60)
    return out


def _wait_healthy(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def main() -> None:
    settings = Settings.from_env()
    results: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0]}

    began = time.perf_counter()
    service = QAService(settings)
    service.warm_up()
    results["startup_s"] = round(time.perf_counter() - began, 2)

    asked = questions()
    latencies = []
    for _ in range(3):
        for question in asked:
            t = time.perf_counter()
            service.ask(question)
            latencies.append((time.perf_counter() - t) * 1000)
    results["ask_ms"] = {"n": len(latencies), "p50": round(statistics.median(latencies), 1),
                         "p95": round(percentile(latencies, 0.95), 1),
                         "mean": round(statistics.fmean(latencies), 1)}

    results["http"] = http_load(settings, asked)

    with tempfile.TemporaryDirectory() as folder:
        fresh = Settings(sources_dir=settings.sources_dir, index_dir=Path(folder) / "index")
        builder = QAService(fresh, embedder=service.embedder)
        t = time.perf_counter()
        report = builder.build()
        results["build_full_s"] = round(time.perf_counter() - t, 2)
        results["build_passages"] = report.chunks
        t = time.perf_counter()
        builder.build()
        results["rebuild_unchanged_s"] = round(time.perf_counter() - t, 2)
        shutil.rmtree(folder, ignore_errors=True)

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
