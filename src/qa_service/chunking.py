"""Cleaned text → sentences → passages, each with `start`/`end` offsets into the cleaned text.

Pure functions. Every span is cut from the text by offsets, never rebuilt from pieces, so
`text[start:end]` is the passage or sentence by construction; citations rely on that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

CHUNKING_VERSION = 1

# Words before a full stop that does not end a sentence.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs etc e.g i.e cf al no nos fig figs vol vols p pp ed eds gen col
    lt maj capt gov sen rep inc ltd co corp dept approx est jan feb mar apr jun jul aug sep sept oct
    nov dec u.s u.k u.n u.s.s.r ph.d""".split()
)
_CONNECTORS = frozenset("of for and the a an on in at to with from by vs".split())
_BOUNDARY = re.compile(r"[.!?…]+[\"”’')\]]*(?=\s)")
_WORD = re.compile(r"\S+")
_PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\n)[^\n]+)*")


@dataclasses.dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclasses.dataclass(frozen=True)
class Passage:
    chunk_id: str
    source: str
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]  # offsets into the document, not into the passage

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of `text`; a sentence never crosses a paragraph break.

    Title-like fragments ("June 5, 2019.", "Jiang Zemin Visits Moscow.") are joined to the
    sentence that follows them in the same paragraph, so a dated heading and what it dates stay
    one unit that can be quoted and cited whole.
    """
    spans: list[Span] = []
    for para in _PARAGRAPH.finditer(text):
        raw = _raw_sentences(text, para.start(), para.end())
        merged: list[Span] = []
        pending: Span | None = None
        for span in raw:
            if pending is not None:
                span = Span(pending.start, span.end)
                pending = None
            if _is_fragment(text[span.start:span.end]) and span is not raw[-1]:
                pending = span
                continue
            merged.append(span)
        if pending is not None:
            merged.append(pending)
        spans.extend(merged)
    return spans


def _raw_sentences(text: str, start: int, end: int) -> list[Span]:
    spans = []
    cursor = start
    for match in _BOUNDARY.finditer(text, start, end):
        stop = match.end()
        if not _is_boundary(text, match.start(), stop, end):
            continue
        spans.append(_trimmed(text, cursor, stop))
        cursor = stop
    if cursor < end:
        spans.append(_trimmed(text, cursor, end))
    return [s for s in spans if s.end > s.start]


def _is_boundary(text: str, dot: int, stop: int, end: int) -> bool:
    following = text[stop:end].lstrip()
    if not following:
        return True
    first = following[0]
    if first.islower() or first in ",;:)":
        return False
    if text[dot] == ".":
        word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[max(0, dot - 12):dot])
        if word:
            token = word.group(1).lower()
            if token in _ABBREVIATIONS:
                return False
            if len(token) == 1 and word.group(1).isupper():  # an initial: "V. Kashin"
                return False
    return True


def _trimmed(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)


def _is_fragment(sentence: str) -> bool:
    words = _WORD.findall(sentence)
    if len(words) < 4:
        return True
    if len(words) >= 14:
        return False
    # A title: every word is capitalised, a number, or a small connecting word.
    return all(
        w.lstrip("“\"'(")[:1].isupper() or w[:1].isdigit() or w.strip(",.") in _CONNECTORS
        or not w[:1].isalnum()
        for w in words
    )


def make_passages(
    source: str,
    text: str,
    max_sentences: int = 4,
    max_chars: int = 700,
    overlap: int = 1,
) -> list[Passage]:
    """Windows of up to `max_sentences` sentences (and about `max_chars`), `overlap` shared."""
    sentences = split_sentences(text)
    passages: list[Passage] = []
    i = 0
    while i < len(sentences):
        j = i + 1
        while (
            j < len(sentences)
            and j - i < max_sentences
            and sentences[j].end - sentences[i].start <= max_chars
        ):
            j += 1
        window = tuple(sentences[i:j])
        start, end = window[0].start, window[-1].end
        passages.append(
            Passage(
                chunk_id=f"{source}#{len(passages)}",
                source=source,
                start=start,
                end=end,
                text=text[start:end],
                sentences=window,
            )
        )
        if j >= len(sentences):
            break
        i = max(j - overlap, i + 1)
    return passages
