"""Speed figures of the service on this machine: `make bench`.

Measures what a user waits for: start-up (model and index loaded), one question through the
service, questions over HTTP under concurrent load (waitress on 127.0.0.1, bounded in count),
a full index build and a rebuild with nothing changed. Writes bench/results/latest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from qa_service.config import Settings  # noqa: E402
from qa_service.evaluation import load_gold  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.web import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLD = [ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "tests" / "gold" / "paraphrased.jsonl"]
HTTP_REQUESTS = 300
HTTP_CLIENTS = 4


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

    import waitress

    server = waitress.create_server(create_app(settings, service), host="127.0.0.1", port=0,
                                    threads=settings.threads)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/api/answer"
    http_latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def client(offset: int) -> None:
        nonlocal errors
        for i in range(HTTP_REQUESTS // HTTP_CLIENTS):
            body = json.dumps({"question": asked[(offset + i) % len(asked)]}).encode()
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
            except OSError:
                with lock:
                    errors += 1
            with lock:
                http_latencies.append((time.perf_counter() - t) * 1000)

    began = time.perf_counter()
    clients = [threading.Thread(target=client, args=(i * 7,)) for i in range(HTTP_CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    wall = time.perf_counter() - began
    server.close()
    results["http"] = {"requests": len(http_latencies), "clients": HTTP_CLIENTS, "errors": errors,
                       "per_second": round(len(http_latencies) / wall, 1),
                       "p50_ms": round(statistics.median(http_latencies), 1),
                       "p95_ms": round(percentile(http_latencies, 0.95), 1)}

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
