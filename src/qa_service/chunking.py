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
# Bounded repeats: an unbounded `+` rescans a long run of dots from every position.
_BOUNDARY = re.compile(r"[.!?…]{1,16}[\"”’')\]]{0,8}(?=\s)")
_NON_SPACE = re.compile(r"\S")
_WORD = re.compile(r"\S+")
# The longest sentence of the shipped sources is 342 characters; a "sentence" past this one
# (a line without punctuation, a table flattened into text) is cut at word boundaries, so no
# passage is longer than max(chunk_max_chars, MAX_SENTENCE_CHARS).
MAX_SENTENCE_CHARS = 1000
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
        for span in merged:
            spans.extend(_bounded(text, span, MAX_SENTENCE_CHARS))
    return spans


def _bounded(text: str, span: Span, limit: int) -> list[Span]:
    """`span` cut into pieces of at most `limit` characters, at the last space before the
    limit (in its second half), or hard at the limit when a run has no space at all."""
    if span.end - span.start <= limit:
        return [span]
    pieces = []
    start = span.start
    while span.end - start > limit:
        window_end = start + limit
        cut = max(text.rfind(" ", start + limit // 2, window_end),
                  text.rfind("\n", start + limit // 2, window_end))
        if cut <= start:
            cut = window_end
        piece = _trimmed(text, start, cut)
        if piece.end > piece.start:
            pieces.append(piece)
        start = cut
        while start < span.end and text[start].isspace():
            start += 1
    if start < span.end:
        pieces.append(_trimmed(text, start, span.end))
    return pieces


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
    # Only the next visible character matters; slicing the rest of the paragraph here made
    # splitting quadratic (a 5.3 MB paragraph took 32 s).
    found = _NON_SPACE.search(text, stop, end)
    if found is None:
        return True
    first = found.group()
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
