"""One reader per file type: bytes → (cleaned text, metadata, page starts).

Text and Markdown are cleaned by `sources`; HTML goes through trafilatura (main text and
metadata of a saved page), PDF through pypdf (text page by page, so citations can name a page).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from .errors import SourceError
from .sources import (
    Reader,
    clean_markdown,
    clean_text,
    decode_text,
    running_heads,
    split_front_matter,
)

Pages = tuple[tuple[int, int], ...]


def read_txt(path: Path, raw: bytes) -> tuple[str, dict[str, Any], Pages]:
    text = decode_text(raw, path.name)
    meta, body = split_front_matter(text, path.name)
    return clean_text(body), meta, ()


def read_md(path: Path, raw: bytes) -> tuple[str, dict[str, Any], Pages]:
    text = decode_text(raw, path.name)
    meta, body = split_front_matter(text, path.name)
    return clean_markdown(body), meta, ()


def read_html(path: Path, raw: bytes) -> tuple[str, dict[str, Any], Pages]:
    import trafilatura

    html = decode_text(raw, path.name)
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    extracted = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, include_tables=True, favor_recall=True
    )
    if extracted is None:
        raise SourceError(f"{path.name}: no main text found in the HTML page")
    data = extracted.as_dict() if hasattr(extracted, "as_dict") else dict(extracted)
    body = data.get("text") or ""
    if not body.strip():
        raise SourceError(f"{path.name}: no main text found in the HTML page")
    meta = {
        "title": data.get("title"),
        "author": data.get("author"),
        "publisher": data.get("sitename"),
        "date": data.get("date"),
        "url": data.get("url"),
    }
    # trafilatura gives one paragraph a line; a blank line between them keeps them apart.
    return clean_text(body.replace("\n", "\n\n")), meta, ()


def read_pdf(path: Path, raw: bytes) -> tuple[str, dict[str, Any], Pages]:
    import pypdf
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted:
            raise SourceError(f"{path.name}: the PDF is encrypted; save an unprotected copy")
        page_texts = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
    except SourceError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AssertionError) as exc:
        raise SourceError(f"{path.name}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    # Clean page by page so every passage can say which page it is on; hyphenation across a page
    # break is rare enough to leave.
    parts: list[str] = []
    pages: list[tuple[int, int]] = []
    offset = 0
    heads = running_heads("\n".join(page_texts))  # a running head repeats across pages
    for number, page_text in enumerate(page_texts, start=1):
        cleaned = clean_text(page_text, drop=heads)
        if not cleaned:
            continue
        if parts:
            offset += 2  # the "\n\n" between pages
        pages.append((number, offset))
        parts.append(cleaned)
        offset += len(cleaned)
    if not parts:
        raise SourceError(f"{path.name}: the PDF has no extractable text (scanned images?)")
    meta = {
        "title": _pdf_field(info, "/Title"),
        "author": _pdf_field(info, "/Author"),
        "date": _pdf_date(info),
    }
    return "\n\n".join(parts), meta, tuple(pages)


def _pdf_field(info: Any, key: str) -> str | None:
    value = info.get(key) if hasattr(info, "get") else None
    return str(value).strip() or None if value else None


def _pdf_date(info: Any) -> str | None:
    raw = _pdf_field(info, "/CreationDate")
    if raw and raw.startswith("D:") and len(raw) >= 10:
        return f"{raw[2:6]}-{raw[6:8]}-{raw[8:10]}"
    return None


READERS: dict[str, Reader] = {
    ".txt": read_txt,
    ".md": read_md,
    ".markdown": read_md,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}
