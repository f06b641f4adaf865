"""Approximate dense search against exact: `python bench/ann.py --sizes 100000,1000000`.

Which FAISS index a segment of many passages should use when the service searches one query at
a time on one OpenMP thread, asks for the top 100 and rescores those exactly from the float32
vectors. Passages are recombined from the sentences of `sources/` as bench/scale.py does (four
random sentences a passage, seeded) and embedded with the stand-in hashing embedder (384
dimensions, L2-normalised, inner product); the queries are the gold questions. The largest
corpus is embedded once, in batches, and each smaller size is its prefix.

For each size it compares exact IndexFlatIP; IndexIVFFlat and IndexIVFScalarQuantizer (8 bit)
at two nlist around 4*sqrt(n) (the powers of two either side), trained on a sample, searched at
several nprobe (the SQ8 index reuses the IVFFlat's coarse centroids; its build time counts
them); and IndexHNSWFlat (M=32), dropped at a size whose build overruns `--hnsw-budget`.

Per configuration: recall@10 and recall@100 against exact search, and recall@10 after exact
rescoring of the 100 candidates (what the service gets); single-query p50/p95 on one thread;
build (train + add) seconds on every core; bytes written by faiss.write_index; and, each in a
fresh process, faiss.read_index with the page cache evicted and warm, IO_FLAG_MMAP and
IO_FLAG_MMAP_IFC with it evicted, and IO_FLAG_MMAP_IFC warm: seconds to open, growth of
anonymous (private) and file-backed resident memory after opening and after searching every
question once, p50 of that first pass and of a second one, and whether the answers match the
built index's. Matching answers alone do not show that a mapping engaged (read_index accepts
every flag on every index); the anonymous memory does.

`--embedder model` embeds with the packaged model instead (slow: for a check of the recall
figures at a small size; hashing vectors cluster unlike a language model's).

Recall counts ties as hits (the hashing vectors tie often): a returned passage counts when its
exact score reaches the exact k-th best. Latencies are wall-clock on a shared machine: noisy.

Prints a table and writes bench/results/ann.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from scale import gold_questions, seed_sentences

from qa_service.config import Settings
from qa_service.embedding import Embedder, HashingEmbedder, make_embedder

ROOT = Path(__file__).resolve().parent.parent
DIMENSION = 384
SENTENCES_PER_PASSAGE = 4
CANDIDATES = 100  # the service's dense candidates, rescored exactly
TIE = 1e-5  # scores this close to the k-th best count as ties

PROBE = r"""
import json, sys, time
import numpy as np

def rss():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile")}

path, flags, queries_path, expected_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
import faiss
queries, expected = np.load(queries_path), np.load(expected_path)
faiss.omp_set_num_threads(1)
base = rss()
began = time.perf_counter()
try:
    index = faiss.read_index(path, flags)
except Exception as exc:
    print(json.dumps({"ok": False, "error": str(exc).strip().splitlines()[-1]}))
    sys.exit()
out = {"ok": True, "open_s": round(time.perf_counter() - began, 3)}
opened = rss()
times, same = [], True
for i in range(len(queries)):
    t = time.perf_counter()
    _, ids = index.search(queries[i:i + 1], expected.shape[1])
    times.append((time.perf_counter() - t) * 1000)
    same = same and bool((ids[0] == expected[i]).all())
searched = rss()
again = []
for i in range(len(queries)):
    t = time.perf_counter()
    index.search(queries[i:i + 1], expected.shape[1])
    again.append((time.perf_counter() - t) * 1000)
out.update({"type": type(index).__name__, "same_answers": same,
            "first_query_ms": round(times[0], 2), "p50_ms": round(sorted(times)[len(times) // 2], 2),
            "p50_again_ms": round(sorted(again)[len(again) // 2], 2),
            **{f"{k}_open_mb": round(opened[k] - base[k]) for k in base},
            **{f"{k}_searched_mb": round(searched[k] - base[k]) for k in base}})
print(json.dumps(out))
"""

LOADS = (  # (name, read_index flags, evict the file from the page cache first)
    ("read_cold", 0, True),
    ("read_warm", 0, False),
    ("mmap", faiss.IO_FLAG_MMAP, True),
    ("mmap_ifc", faiss.IO_FLAG_MMAP_IFC, True),
    ("mmap_ifc_warm", faiss.IO_FLAG_MMAP_IFC, False),
)


# -- corpus ---------------------------------------------------------------------------------

def passage_texts(rng: random.Random, sentences: list[str], count: int) -> list[str]:
    return [" ".join(rng.choice(sentences) for _ in range(SENTENCES_PER_PASSAGE))
            for _ in range(count)]


def make(name: str) -> Embedder:
    if name == "model":
        return make_embedder(Settings())
    return HashingEmbedder(DIMENSION)


def embed_corpus(embedder: Embedder, size: int, sentences: list[str], batch: int,
                 seed: int = 7) -> tuple[np.ndarray, float]:
    """`size` passage vectors, made and embedded `batch` texts at a time; and the seconds."""
    rng = random.Random(seed)
    vectors = np.empty((size, DIMENSION), dtype=np.float32)
    began = time.perf_counter()
    for start in range(0, size, batch):
        count = min(batch, size - start)
        vectors[start:start + count] = embedder.embed_documents(passage_texts(rng, sentences, count))
        print(f"  embedded {start + count:,} / {size:,} ({time.perf_counter() - began:.0f} s)",
              file=sys.stderr, flush=True)
    return vectors, time.perf_counter() - began


# -- measuring an index ---------------------------------------------------------------------

def one_thread_searches(index: Any, queries: np.ndarray, repeats: int) -> tuple[np.ndarray, list[float]]:
    """Top-CANDIDATES ids of each query, and every search's milliseconds, one query at a time on
    one OpenMP thread (as the service searches)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for i in range(min(10, len(queries))):  # warm-up
            index.search(queries[i:i + 1], CANDIDATES)
        ids = np.empty((len(queries), CANDIDATES), dtype=np.int64)
        times = []
        for _ in range(repeats):
            for i in range(len(queries)):
                began = time.perf_counter()
                _, found = index.search(queries[i:i + 1], CANDIDATES)
                times.append((time.perf_counter() - began) * 1000)
                ids[i] = found[0]
    finally:
        faiss.omp_set_num_threads(threads)
    return ids, times


def hits(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Per query, how many `ids` score at least `floor` exactly (ties counted); -1 never does."""
    exact = np.einsum("qkd,qd->qk", vectors[np.maximum(ids, 0)], queries)
    return ((exact >= floor[:, None] - TIE) & (ids >= 0)).sum(axis=1)


def recalls(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray,
            truth: np.ndarray) -> dict[str, float]:
    """recall@10 and @100 against exact scores `truth` (queries x CANDIDATES, best first), and
    recall@10 once the CANDIDATES are rescored exactly."""
    return {
        "recall_10": float(hits(ids[:, :10], vectors, queries, truth[:, 9]).mean() / 10),
        "recall_100": float(hits(ids, vectors, queries, truth[:, -1]).mean() / CANDIDATES),
        "recall_10_rescored": float(
            np.minimum(hits(ids, vectors, queries, truth[:, 9]), 10).mean() / 10),
    }


def search_row(index: Any, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
               repeats: int) -> tuple[dict[str, float], np.ndarray]:
    ids, times = one_thread_searches(index, queries, repeats)
    times.sort()
    row = {**recalls(ids, vectors, queries, truth),
           "p50_ms": round(statistics.median(times), 3),
           "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3)}
    return {k: round(v, 4) for k, v in row.items()}, ids


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so the next open reads the disk."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def loads(index: Any, ids: np.ndarray, queries_path: Path, work: Path) -> dict[str, Any]:
    """Write the index, then open and search it in a fresh process for each of LOADS."""
    path, expected = work / "index.faiss", work / "expected.npy"
    began = time.perf_counter()
    faiss.write_index(index, str(path))
    out: dict[str, Any] = {"write_s": round(time.perf_counter() - began, 2),
                           "file_bytes": path.stat().st_size}
    np.save(expected, ids)
    for name, flags, cold in LOADS:
        if cold:
            evict(path)
        probe = subprocess.run([sys.executable, "-c", PROBE, str(path), str(flags),
                                str(queries_path), str(expected)], capture_output=True, text=True)
        lines = probe.stdout.strip().splitlines()
        out[name] = json.loads(lines[-1]) if probe.returncode == 0 and lines else {
            "ok": False, "error": f"exit {probe.returncode}: {probe.stderr.strip()[-300:]}"}
    path.unlink()
    expected.unlink()
    return out


# -- building -------------------------------------------------------------------------------

def build_flat(vectors: np.ndarray) -> tuple[Any, dict[str, float]]:
    index = faiss.IndexFlatIP(DIMENSION)
    began = time.perf_counter()
    index.add(vectors)
    return index, {"train_s": 0.0, "add_s": round(time.perf_counter() - began, 2)}


def training_sample(vectors: np.ndarray, nlist: int, limit: int, per_list: int) -> np.ndarray:
    count = min(len(vectors), limit, per_list * nlist)
    rows = np.random.default_rng(nlist).choice(len(vectors), count, replace=False)
    return vectors[np.sort(rows)]


def build_ivf(vectors: np.ndarray, sample: np.ndarray, nlist: int, sq8: bool,
              centroids: np.ndarray | None = None) -> tuple[Any, dict[str, float]]:
    """IVFFlat (or IVF-SQ8 when `sq8`); given `centroids`, the coarse quantizer is not trained
    again (only the scalar quantizer is)."""
    quantizer = faiss.IndexFlatIP(DIMENSION)
    if centroids is not None:
        quantizer.add(centroids)
    if sq8:
        index = faiss.IndexIVFScalarQuantizer(quantizer, DIMENSION, nlist,
                                              faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFFlat(quantizer, DIMENSION, nlist, faiss.METRIC_INNER_PRODUCT)
    began = time.perf_counter()
    index.train(sample)
    trained = time.perf_counter()
    index.add(vectors)
    return index, {"train_s": round(trained - began, 2), "add_s": round(time.perf_counter() - trained, 2)}


def build_hnsw(vectors: np.ndarray, m: int, budget_s: float,
               chunk: int = 20_000) -> tuple[Any | None, dict[str, Any]]:
    """HNSWFlat added `chunk` vectors at a time; given up (None) once past `budget_s`."""
    index = faiss.IndexHNSWFlat(DIMENSION, m, faiss.METRIC_INNER_PRODUCT)
    began = time.perf_counter()
    for start in range(0, len(vectors), chunk):
        index.add(vectors[start:start + chunk])
        spent = time.perf_counter() - began
        if spent > budget_s and index.ntotal < len(vectors):
            return None, {"stopped_after_s": round(spent, 1), "added": int(index.ntotal),
                          "projected_s_at_least": round(spent * len(vectors) / index.ntotal)}
    return index, {"train_s": 0.0, "add_s": round(time.perf_counter() - began, 2),
                   "ef_construction": index.hnsw.efConstruction}


def nlists(size: int) -> list[int]:
    """The powers of two either side of 4*sqrt(size)."""
    low = 2 ** int(math.log2(4 * math.sqrt(size)))
    return [low, 2 * low]


# -- one size -------------------------------------------------------------------------------

def measure(vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace,
            work: Path) -> Iterator[dict[str, Any]]:
    """One row per configuration (index, build, file, search parameters)."""
    size = len(vectors)
    queries_path = work / "queries.npy"
    np.save(queries_path, queries)
    flat, build = build_flat(vectors)
    truth, _ = flat.search(queries, CANDIDATES)  # every core: the reference, not a timing
    if "flat" in args.indexes:
        search, ids = search_row(flat, vectors, queries, truth, args.repeats)
        yield {"size": size, "index": "Flat", "params": "", **search, "build": build,
               "file": loads(flat, ids, queries_path, work)}
    del flat

    for nlist in nlists(size) if {"ivf", "sq8"} & set(args.indexes) else []:
        sample = training_sample(vectors, nlist, args.train_max, args.train_per_list)
        built = [("IVFFlat", *build_ivf(vectors, sample, nlist, sq8=False))]
        if "sq8" in args.indexes:
            ivf_train_s = built[0][2]["train_s"]
            centroids = built[0][1].quantizer.reconstruct_n(0, nlist)
            built.append(("IVFSQ8", *build_ivf(vectors, sample, nlist, sq8=True, centroids=centroids)))
            built[1][2]["train_s"] = round(built[1][2]["train_s"] + ivf_train_s, 2)
        if "ivf" not in args.indexes:
            built.pop(0)
        while built:
            name, index, build = built.pop(0)
            build = {**build, "train_vectors": len(sample)}
            ids = None
            for nprobe in args.nprobes:
                index.nprobe = nprobe
                search, found = search_row(index, vectors, queries, truth, args.repeats)
                if nprobe == args.file_nprobe or ids is None:
                    ids, file_nprobe = found, nprobe
                yield {"size": size, "index": name, "params": f"nlist={nlist} nprobe={nprobe}",
                       **search, "build": build}
            index.nprobe = file_nprobe  # written into the file: the probes search with it
            yield {"size": size, "index": name, "params": f"nlist={nlist} (file, nprobe={file_nprobe})",
                   "build": build, "file": loads(index, ids, queries_path, work)}
            del index

    if "hnsw" in args.indexes:
        hnsw, build = build_hnsw(vectors, args.hnsw_m, args.hnsw_budget)
        if hnsw is None:
            yield {"size": size, "index": "HNSWFlat", "params": f"M={args.hnsw_m} (build stopped)",
                   "build": build}
            return
        ids = None
        for ef in args.ef_search:
            hnsw.hnsw.efSearch = ef
            search, found = search_row(hnsw, vectors, queries, truth, args.repeats)
            ids = found if ids is None else ids
            yield {"size": size, "index": "HNSWFlat", "params": f"M={args.hnsw_m} efSearch={ef}",
                   **search, "build": build}
        hnsw.hnsw.efSearch = args.ef_search[0]
        yield {"size": size, "index": "HNSWFlat",
               "params": f"M={args.hnsw_m} (file, efSearch={args.ef_search[0]})",
               "build": build, "file": loads(hnsw, ids, queries_path, work)}


# -- output ---------------------------------------------------------------------------------

COLUMNS = ("size", "index", "params", "r@10", "r@100", "r10|100", "p50 ms", "p95 ms", "build s",
           "MB", "read cold/warm s", "mmap s", "mmap anon MB", "mmap p50 1st/2nd", "ifc s",
           "ifc anon MB", "ifc p50 1st/2nd", "ifc warm p50")


def load_cells(file: dict[str, Any], name: str) -> tuple[str, str, str]:
    """Seconds to open, anonymous memory growth open -> searched, and p50 of the first and the
    second pass over the questions; or why it failed."""
    load = file[name]
    if not load["ok"]:
        return "FAIL", load["error"][:40], ""
    mark = "" if load["same_answers"] else " (differs!)"
    return (f"{load['open_s']:.2f}", f"{load['RssAnon_open_mb']}->{load['RssAnon_searched_mb']}{mark}",
            f"{load['p50_ms']:.2f}/{load['p50_again_ms']:.2f}")


def table_row(row: dict[str, Any]) -> list[str]:
    build = row["build"]
    cells = [f"{row['size']:,}", row["index"], row["params"]]
    cells += [f"{row[k]:.3f}" if k in row else "" for k in ("recall_10", "recall_100", "recall_10_rescored")]
    cells += [f"{row[k]:.2f}" if k in row else "" for k in ("p50_ms", "p95_ms")]
    cells.append(f"{build['train_s'] + build['add_s']:.1f}" if "add_s" in build
                 else f">{build['stopped_after_s']:.0f} (stopped)")
    if "file" in row:
        file = row["file"]
        read = "/".join(f"{file[n]['open_s']:.2f}" if file[n]["ok"] else "FAIL"
                        for n in ("read_cold", "read_warm"))
        cells += [f"{file['file_bytes'] / 2**20:.0f}", read,
                  *load_cells(file, "mmap"), *load_cells(file, "mmap_ifc"),
                  load_cells(file, "mmap_ifc_warm")[2].split("/")[0]]
    return cells + [""] * (len(COLUMNS) - len(cells))


def print_table(rows: list[dict[str, Any]]) -> None:
    lines = [list(COLUMNS)] + [table_row(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="passages, comma-separated")
    parser.add_argument("--indexes", default="flat,ivf,sq8,hnsw",
                        help="which of flat, ivf, sq8, hnsw to measure (exact search always runs)")
    parser.add_argument("--nprobes", default="8,16,32,64,128,256")
    parser.add_argument("--file-nprobe", type=int, default=32, help="nprobe the load probes search at")
    parser.add_argument("--train-max", type=int, default=50_000, help="IVF training vectors, at most")
    parser.add_argument("--train-per-list", type=int, default=30, help="IVF training vectors per list")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", default="64,128")
    parser.add_argument("--hnsw-budget", type=float, default=300, help="seconds an HNSW build may take")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the questions")
    parser.add_argument("--embed-batch", type=int, default=50_000)
    parser.add_argument("--embedder", choices=("hashing", "model"), default="hashing",
                        help="the stand-in hashing embedder, or the packaged model (slow)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ann.json")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.indexes = args.indexes.split(",")
    args.nprobes = [int(p) for p in args.nprobes.split(",")]
    args.ef_search = [int(e) for e in args.ef_search.split(",")]

    began = time.perf_counter()
    embedder = make(args.embedder)
    queries = embedder.embed_documents(gold_questions())
    vectors, embed_s = embed_corpus(embedder, sizes[-1], seed_sentences(), args.embed_batch)
    print(f"embedded {sizes[-1]:,} passages with {embedder.model_id} in {embed_s:.1f} s "
          f"({sizes[-1] / embed_s:,.0f} a second); {len(queries)} questions", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        for size in sizes:
            for row in measure(vectors[:size], queries, args, Path(work)):
                print(json.dumps(row), flush=True)
                rows.append(row)
    print()
    print_table(rows)
    total = time.perf_counter() - began
    print(f"\n{total / 60:.1f} min in all; build threads {faiss.omp_get_max_threads()}, "
          f"faiss {faiss.__version__}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "faiss": faiss.__version__, "embedder": embedder.model_id, "dimension": DIMENSION,
        "questions": len(queries), "candidates": CANDIDATES, "build_threads": faiss.omp_get_max_threads(),
        "embed_s": round(embed_s, 1), "total_s": round(total, 1), "rows": rows,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
