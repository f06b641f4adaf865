"""One segment on disk: written from documents, opened memory-mapped, read back exactly,
merged without reading sources, searched exactly or through its IVF index."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from qa_service.chunking import make_passages
from qa_service.embedding import HashingEmbedder
from qa_service.errors import IndexFormatError
from qa_service.lexical import Postings
from qa_service.segments import Parts, Segment
from qa_service.sources import Document
from qa_service.text import tokens

EMBEDDER = HashingEmbedder(dimension=32)


def _documents(n: int, prefix: str = "doc") -> list[Document]:
    out = []
    for i in range(n):
        text = " ".join(f"Report {i} says the Zeta-{j} engine was tested {1990 + j} times at port "
                        f"{i * j}, with ünïcode «quotes»." for j in range(1, 6))
        out.append(Document(f"{prefix}-{i}.txt", f"Title {i}", {"author": f"Author {i}"}, text,
                            f"{i:064x}", ((1, 0), (2, 40))))
    return out


def _parts(documents: list[Document]) -> tuple[Parts, list]:
    passages = [p for d in documents for p in make_passages(d.source, d.text, 2, 400, 1)]
    sentences = [p.text[s.start - p.start:s.end - p.start] for p in passages for s in p.sentences]
    parts = Parts.of_documents(
        [(d, None, {"ze": ["zeta", "engin"]}) for d in documents], passages,
        [bytes.fromhex(p.content_hash) for p in passages],
        [hashlib.sha256(t.encode()).digest() for t in sentences],
        EMBEDDER.embed_documents([p.text for p in passages]),
        EMBEDDER.embed_documents(sentences), Postings.build([tokens(p.text) for p in passages]))
    return parts, passages


def _written(tmp_path, parts: Parts, name: str = "seg", **kwargs) -> Segment:
    parts.write(tmp_path / name, name, **kwargs)
    return Segment(tmp_path / name)


def test_a_segment_reads_back_what_was_written(tmp_path):
    documents = _documents(3)
    parts, passages = _parts(documents)
    segment = _written(tmp_path, parts)
    assert segment.size == len(passages) and segment.dense is None
    assert [segment.passage(i) for i in range(segment.size)] == passages
    assert [segment.document(i) for i in range(3)] == documents
    assert segment.records[1].acronyms == {"ze": ["zeta", "engin"]}
    row = 4
    first = int(parts.sentence_ptr[row])
    assert np.array_equal(segment.sentence_vector(row, 1), parts.sentence_vectors[first + 1])
    reuse = segment.vectors_of([0])
    assert bytes.fromhex(passages[0].content_hash) in reuse
    assert len(reuse) < len(segment.vectors_of([0, 1, 2]))


def test_merging_keeps_the_live_documents_exactly(tmp_path):
    one = _written(tmp_path, _parts(_documents(3))[0], "one")
    two = _written(tmp_path, _parts(_documents(2, "other"))[0], "two")
    alive = ~np.isin(one.passage_doc, [1])  # doc-1.txt removed
    merged = _written(tmp_path, Parts.merged([(one, alive), (two, None)]), "merged")
    expected = [one.passage(r) for r in range(one.size) if alive[r]] + [
        two.passage(r) for r in range(two.size)]
    assert [merged.passage(r) for r in range(merged.size)] == expected
    assert [r.source for r in merged.records] == ["doc-0.txt", "doc-2.txt", "other-0.txt",
                                                  "other-1.txt"]
    kept = np.flatnonzero(alive)
    assert np.array_equal(merged.passage_vectors[:len(kept)], one.passage_vectors[kept])
    assert np.array_equal(merged.passage_vectors[len(kept):], two.passage_vectors)
    last = merged.size - 1
    assert np.array_equal(merged.sentence_vector(last, 0), two.sentence_vector(two.size - 1, 0))


def test_a_large_segment_is_searched_through_its_ivf_index(tmp_path):
    parts, passages = _parts(_documents(40))
    exact = _written(tmp_path, parts, "exact")
    ivf = _written(tmp_path, parts, "ivf", ann_threshold=10)
    assert ivf.dense is not None and ivf.meta["dense"]["kind"] == "ivf"
    recall = []
    for question in ("Zeta-3 engine tests", "port 12", "report 7 unicode quotes"):
        query = EMBEDDER.embed_query(question)
        truth = set(exact.dense_search(query, 10, None).tolist())
        found = set(ivf.dense_search(query, 10, None).tolist())
        recall.append(len(truth & found) / 10)
    assert np.mean(recall) >= 0.9
    alive = np.ones(ivf.size, dtype=bool)
    alive[:50] = False
    assert (ivf.dense_search(EMBEDDER.embed_query("Zeta"), 10, alive) >= 50).all()


def test_a_file_of_another_size_is_refused_and_an_edit_found_by_verify(tmp_path):
    segment = _written(tmp_path, _parts(_documents(2))[0])
    folder = segment.folder
    (folder / "post_tf.npy").write_bytes((folder / "post_tf.npy").read_bytes() + b"\0")
    with pytest.raises(IndexFormatError, match="post_tf.npy does not match its segment.json"):
        Segment(folder)
    (folder / "post_tf.npy").write_bytes((folder / "post_tf.npy").read_bytes()[:-1])
    raw = bytearray((folder / "passages.npy").read_bytes())
    raw[-1] ^= 0xFF
    (folder / "passages.npy").write_bytes(bytes(raw))
    opened = Segment(folder)  # same sizes: opens
    with pytest.raises(IndexFormatError, match="passages.npy does not match"):
        opened.verify()
    meta = json.loads((folder / "segment.json").read_text())
    meta["format"] = 99
    (folder / "segment.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError, match="not a segment of format"):
        Segment(folder)
