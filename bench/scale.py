"""How the service grows with the corpus: `make bench-scale [SIZES=10000,100000]`.

Synthetic corpora recombined from the sentences of `sources/` (documents of 400 sentences drawn
at random, so words and their spread are real), indexed and asked through the public Python API
with a stand-in embedder (hashing, 384 dimensions) so the model's cost is left out. For each
size it prints and writes to bench/results/scale.json: the first build, a rebuild with nothing
changed, adding one document, the size on disk, and, in a fresh process, the cold load, answer
p50/p95 over the gold questions, and resident memory after loading.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qa_service import QAService, Settings
from qa_service.chunking import split_sentences
from qa_service.embedding import HashingEmbedder
from qa_service.sources import load_documents

ROOT = Path(__file__).resolve().parent.parent
SENTENCES_PER_DOCUMENT = 400
DIMENSION = 384  # the packaged model's, so vectors weigh what real ones do


def seed_sentences() -> list[str]:
    documents, _ = load_documents(ROOT / "sources")
    out = []
    for doc in documents:
        out.extend(doc.text[s.start:s.end].replace("\n", " ") for s in split_sentences(doc.text))
    return [s for s in out if len(s) > 30]


def write_corpus(folder: Path, passages: int, sentences: list[str], seed: int = 7) -> int:
    """Documents enough for about `passages` passages (3 new sentences a passage)."""
    rng = random.Random(seed)
    documents = max(1, passages * 3 // SENTENCES_PER_DOCUMENT)
    folder.mkdir(parents=True)
    for i in range(documents):
        body = []
        for _ in range(SENTENCES_PER_DOCUMENT // 4):
            body.append(" ".join(rng.choice(sentences) for _ in range(4)))
        (folder / f"doc-{i:06d}.txt").write_text(
            f"---\ntitle: Synthetic report {i}\n---\n" + "\n\n".join(body) + "\n",
            encoding="utf-8")
    return documents


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


PROBE = r"""
import json, statistics, sys, time
began = time.perf_counter()
from qa_service import QAService, Settings
from qa_service.embedding import HashingEmbedder
service = QAService(Settings(sources_dir=sys.argv[1], index_dir=sys.argv[2]),
                    embedder=HashingEmbedder(int(sys.argv[3])))
service.snapshot()
cold = time.perf_counter() - began
rss = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS")))
questions = json.loads(sys.argv[4])
times = []
for q in questions:
    t = time.perf_counter()
    service.ask(q)
    times.append((time.perf_counter() - t) * 1000)
times.sort()
after = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS")))
print(json.dumps({"cold_load_s": round(cold, 2), "rss_mb": round(rss / 1024),
                  "rss_after_questions_mb": round(after / 1024),
                  "answer_p50_ms": round(statistics.median(times), 1),
                  "answer_p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}))
"""


def gold_questions() -> list[str]:
    out = []
    for path in (ROOT.parent / "shared" / "eval" / "dev.jsonl",
                 ROOT / "tests" / "gold" / "paraphrased.jsonl"):
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                out.extend(t["question"] for t in row.get("turns", [row]))
    return out


def measure(size: int, sentences: list[str], work: Path) -> dict[str, object]:
    base = work / f"scale-{size}"
    settings = Settings(sources_dir=base / "sources", index_dir=base / "index")
    documents = write_corpus(settings.sources_dir, size, sentences)
    service = QAService(settings, embedder=HashingEmbedder(DIMENSION))
    row: dict[str, object] = {"documents": documents}

    began = time.perf_counter()
    report = service.build()
    row["passages"] = report.chunks
    row["build_s"] = round(time.perf_counter() - began, 2)

    began = time.perf_counter()
    service.build()
    row["no_change_rebuild_s"] = round(time.perf_counter() - began, 2)

    write_corpus(base / "extra", SENTENCES_PER_DOCUMENT // 3, sentences, seed=size)
    shutil.move(str(next((base / "extra").iterdir())), settings.sources_dir / "added.txt")
    began = time.perf_counter()
    service.build()
    row["add_one_document_s"] = round(time.perf_counter() - began, 2)
    row["segments"] = len(service.snapshot().data.segments)
    row["disk_mb"] = round(disk_bytes(settings.index_dir) / 2**20, 1)

    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(settings.sources_dir), str(settings.index_dir),
         str(DIMENSION), json.dumps(gold_questions())],
        capture_output=True, text=True, check=True)
    row.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    shutil.rmtree(base)
    return row


def model_rate(sentences: list[str], count: int = 512) -> dict[str, object]:
    """The packaged model's bulk embedding rate (passages of 4 seed sentences a second), on the
    backend the service uses (QA_EMBED_BACKEND), all cores."""
    from qa_service.embedding import make_embedder

    rng = random.Random(1)
    texts = [" ".join(rng.choice(sentences) for _ in range(4)) for _ in range(count)]
    embedder = make_embedder(Settings())
    embedder.embed_documents(texts[:32])  # loads the model and opens the bulk session
    began = time.perf_counter()
    embedder.embed_documents(texts)
    return {"model": embedder.model_id, "backend": type(embedder).__name__,
            "passages_per_s": round(count / (time.perf_counter() - began), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="passages per corpus, comma-separated (1000000 takes long)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--no-model", action="store_true",
                        help="skip the packaged model's passages/s")
    args = parser.parse_args()
    sentences = seed_sentences()
    out = ROOT / "bench" / "results" / "scale.json"
    # Rows of other sizes from earlier runs are kept: 1M is run on its own.
    results = {}
    if out.exists():
        previous = json.loads(out.read_text(encoding="utf-8"))
        rows = previous.get("sizes", []) if isinstance(previous, dict) else previous
        results = {r["target_passages"]: r for r in rows}
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        for size in (int(s) for s in args.sizes.split(",")):
            row = {"target_passages": size, "measured": time.strftime("%Y-%m-%d"),
                   **measure(size, sentences, Path(work))}
            print(json.dumps(row), flush=True)
            results[size] = row
    rate = model_rate(sentences) if not args.no_model else None
    if rate:
        print(json.dumps(rate), flush=True)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"sizes": [results[k] for k in sorted(results)], "model": rate},
                              indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
