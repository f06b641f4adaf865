"""Source files → `Document`s: metadata and cleaned text.

Cleaning removes what a reader would not call text (front matter, image links, markup, PDF
line-break hyphenation, hard line wraps, page-break gaps) and keeps the rest. The cleaned text is
what citation offsets point into, so it is stored with the index and served as is.
This module knows nothing of chunks or vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import yaml

from .errors import SourceError

# Files that are never sources: editor leftovers, hidden files, sidecars.
IGNORED_PREFIXES = (".", "~", "#")
CLEANING_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Document:
    source: str  # path relative to the sources folder, with forward slashes: the source id
    title: str
    metadata: dict[str, Any]  # author, publisher, date, url and whatever else the file gave
    text: str  # cleaned text; citation offsets point into it
    sha256: str  # of the file's bytes as read
    pages: tuple[tuple[int, int], ...] = ()  # (page number, start offset) for paged formats

    def page_at(self, offset: int) -> int | None:
        """The page that `offset` of the cleaned text falls on, for paged formats."""
        page = None
        for number, start in self.pages:
            if start > offset:
                break
            page = number
        return page


@dataclasses.dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


# A reader turns a file's bytes into (cleaned text, metadata, page starts); `readers.py` holds
# them by extension and imports the HTML and PDF libraries only when such a file is read.
Reader = Callable[[Path, bytes], tuple[str, dict[str, Any], tuple[tuple[int, int], ...]]]


DEFAULT_MAX_SOURCE_BYTES = 50 * 1024 * 1024  # QA_MAX_SOURCE_MB's default: a long book as PDF


def list_source_files(sources_dir: Path) -> list[Path]:
    """Every candidate file below `sources_dir`, sorted, hidden files and folders left out."""
    return scan_sources(sources_dir)[0]


def scan_sources(sources_dir: Path) -> tuple[list[Path], list[Skipped]]:
    """(files to read, entries refused with their reason), both sorted.

    Nothing outside the sources folder is ever read: a symbolic link is followed only when it
    resolves to a regular file inside the folder; links that point elsewhere, broken links,
    linked folders and special files (fifos, devices, sockets) are refused by name. A fifo
    would block the build forever, and a link to /etc/passwd would publish it.
    """
    if not sources_dir.is_dir():
        raise SourceError(
            f"sources folder {sources_dir} does not exist: create it or set QA_SOURCES_DIR"
        )
    root = Path(os.path.realpath(sources_dir))
    files: list[Path] = []
    refused: list[Skipped] = []
    pending = [sources_dir]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            refused.append(Skipped(source_id(sources_dir, Path(folder)) + "/",
                                   f"cannot list the folder ({exc.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith(IGNORED_PREFIXES):
                continue
            path = Path(entry.path)
            sid = source_id(sources_dir, path)
            reason = _refusal(entry, path, root)
            if reason:
                refused.append(Skipped(sid, f"{sid}: {reason}"))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(path)
            else:
                files.append(path)
    return sorted(files), sorted(refused, key=lambda s: s.source)


def _refusal(entry: os.DirEntry[str], path: Path, root: Path) -> str | None:
    """Why this folder entry may not be read as a source, or None."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        target = Path(os.path.realpath(path))
        if not target.exists():
            return (f"broken symbolic link (to {os.readlink(path)}); remove it or copy the "
                    "file in")
        if not target.is_relative_to(root):
            return ("symbolic link to a file outside the sources folder, refused so the "
                    "service never publishes other files; copy the file in instead")
        if not target.is_file():
            return "symbolic link to a folder or special file; sources are regular files"
        return None
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return None
    kind = ("fifo" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
            else "device")
    return f"not a regular file (a {kind}); sources are regular files"


def source_id(sources_dir: Path, path: Path) -> str:
    return path.relative_to(sources_dir).as_posix()


def load_documents(
    sources_dir: Path, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
    on_document: Callable[[int, int], None] | None = None,
) -> tuple[list[Document], list[Skipped]]:
    """Read every source file; a file that cannot be read is skipped with its reason.

    `on_document(done, total)` is called after each file, for progress.
    """
    paths, skipped = scan_sources(sources_dir)
    documents = []
    for n, path in enumerate(paths, 1):
        try:
            documents.append(read_document(sources_dir, path, max_bytes))
        except SourceError as exc:
            skipped.append(Skipped(source_id(sources_dir, path), exc.message))
        if on_document:
            on_document(n, len(paths))
    return documents, skipped


def read_source_bytes(path: Path, sid: str, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a regular file, at most `max_bytes` of them, never through a link to
    outside its folder (the path is resolved, then opened without following links)."""
    try:
        fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SourceError(f"{sid}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{sid}: not a regular file; sources are regular files")
        if st.st_size > max_bytes:
            raise SourceError(
                f"{sid}: the file is {st.st_size / 1048576:.1f} MB, over the limit of "
                f"{max_bytes / 1048576:g} MB (QA_MAX_SOURCE_MB); split it into parts or raise "
                "QA_MAX_SOURCE_MB"
            )
        return handle.read(max_bytes + 1)[: max_bytes + 1]


def read_document(
    sources_dir: Path, path: Path, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES
) -> Document:
    from .readers import READERS  # local: HTML and PDF libraries load only when needed

    sid = source_id(sources_dir, path)
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise SourceError(
            f"{sid}: unsupported file type {suffix or '(none)'}; "
            f"supported: {', '.join(sorted(READERS))}"
        )
    raw = read_source_bytes(path, sid, max_bytes)
    if len(raw) > max_bytes:  # grew while being read
        raise SourceError(f"{sid}: the file is over the limit of {max_bytes / 1048576:g} MB "
                          "(QA_MAX_SOURCE_MB); split it into parts or raise QA_MAX_SOURCE_MB")
    if not raw.strip():
        raise SourceError(f"{sid}: the file is empty")
    text, metadata, pages = reader(path, raw)
    if len(re.findall(r"[A-Za-z]{2,}", text)) < 3:
        raise SourceError(f"{sid}: no readable text found after cleaning")
    title = str(metadata.get("title") or "").strip() or _title_from_text(text) or path.stem
    metadata = {k: v for k, v in metadata.items() if k != "title" and v not in (None, "")}
    return Document(
        source=sid,
        title=title,
        metadata=metadata,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        pages=pages,
    )


def _title_from_text(text: str) -> str:
    first = text.split("\n", 1)[0].strip()
    return first if 0 < len(first) <= 150 else ""


# ---------------------------------------------------------------------------------------------
# Text decoding and front matter

def decode_text(raw: bytes, name: str) -> str:
    if b"\x00" in raw[:4096]:
        raise SourceError(f"{name}: binary content (NUL bytes), not a text file")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 only fails on a few undefined bytes
        raise SourceError(f"{name}: not UTF-8 or Windows-1252 text")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(8, len(text) // 100):
        raise SourceError(f"{name}: binary content (control characters), not a text file")
    return text


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


def split_front_matter(text: str, name: str) -> tuple[dict[str, Any], str]:
    """A leading YAML block between `---` lines → (metadata, the rest)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        # Keys written as "date  : ..." are valid YAML; commented keys drop out by themselves.
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise SourceError(f"{name}: the front matter is not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise SourceError(f"{name}: the front matter must be a mapping of key: value lines")
    meta = {str(k).strip().lower(): _plain(v) for k, v in meta.items()}
    return meta, text[match.end():]


def _plain(value: Any) -> Any:
    # YAML turns dates into datetime objects; the index stores JSON.
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------------------------
# Cleaning

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*?/?>")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*")
_QUOTE = re.compile(r"^\s{0,3}(?:>\s?)+")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\3(?![\w*])", re.S)
_BULLET = re.compile(r"^\s*(?:[•▲►▪■●◦‣]|[-*+](?=\s))\s*")
_SPACES = re.compile(r"[ \t\u00a0]+")
_SPACE_BEFORE_PUNCT = re.compile(r" +([.,;:!?)])")
_SENTENCE_END = re.compile(r"[.!?:;”\"')\]]$")


def clean_markdown(body: str) -> str:
    """Markdown → plain text: images, links, tags, heading and emphasis marks removed."""
    body = _IMAGE.sub("", body)
    body = _LINK.sub(r"\1", body)
    body = _HTML_TAG.sub("", body)
    lines = []
    for line in body.splitlines():
        line = _QUOTE.sub("", line)
        line = _HEADING.sub("", line)
        lines.append(line)
    body = "\n".join(lines)
    for _ in range(2):  # nested emphasis such as __*x*__
        body = _EMPHASIS.sub(lambda m: m.group(2) or m.group(4), body)
    return clean_text(body)


def clean_text(body: str, drop: Collection[str] | None = None) -> str:
    """Plain text as extracted (often from a PDF) → paragraphs of running text.

    Lines inside a paragraph are joined; a word broken at a line end ("Rus-\\nsia") is mended;
    a blank line that falls inside a sentence (a page break) is closed up; headings and bullet
    items stay paragraphs of their own. Paragraphs are separated by one blank line.
    """
    body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    lines = [_SPACES.sub(" ", line).strip() for line in body.split("\n")]
    heads = _running_heads(lines) | set(drop or ())
    lines = ["" if line in heads else line for line in lines]
    # Words as the text spells them elsewhere; the halves of words broken at a line end are
    # left out, or "Cen-\ntre" would count "cen" and "tre" as words.
    unbroken = re.sub(r"[A-Za-z]+-\n[A-Za-z]+", " ", body)
    words = Counter(w.lower() for w in re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)*", unbroken))
    # Halves of the compounds the text writes whole: "-scale" from "large-scale".
    for compound in [w for w in words if "-" in w]:
        head, _, tail = compound.rpartition("-")
        words[f"-{tail}"] += 1
        words[f"{head.split('-')[0]}-"] += 1

    paragraphs: list[list[str]] = []
    blank_before = True
    for line in lines:
        if not line:
            blank_before = True
            continue
        bullet = _BULLET.match(line)
        if bullet:
            line = line[bullet.end():]
            if not line:
                continue
        current = paragraphs[-1] if paragraphs else None
        starts_new = (
            current is None
            or bool(bullet)
            or _is_heading(line)
            or _is_heading(current[-1])
            or (blank_before and not _continues(current[-1], line))
        )
        if starts_new:
            paragraphs.append([line])
        else:
            current.append(line)
        blank_before = False

    cleaned = []
    for para in paragraphs:
        text = para[0]
        for line in para[1:]:
            text = _join(text, line, words)
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()
        if text:
            cleaned.append(text)
    return "\n\n".join(cleaned)


def _is_heading(line: str) -> bool:
    """An all-capitals line such as "CRISIS" or "KEY COOPERATIVE PROJECTS"."""
    letters = [c for c in line if c.isalpha()]
    return len(letters) >= 4 and all(c.isupper() for c in letters) and len(line) <= 80


def _continues(previous: str, line: str) -> bool:
    """After a blank line: does `line` carry on the sentence `previous` left open?"""
    if _SENTENCE_END.search(previous):
        return False
    first = line[0]
    return first.islower() or (previous.endswith("-") and first.isalnum())


def _join(text: str, line: str, words: Counter[str]) -> str:
    if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[0].isalnum():
        head = re.search(r"[A-Za-z]+-$", text)
        head_word = head.group(0)[:-1] if head else ""
        tail = re.match(r"[A-Za-z]+", line)
        tail_word = tail.group(0) if tail else ""
        if _keep_hyphen(head_word, tail_word, line[0], words):
            return text + line
        return text[:-1] + line
    return text + " " + line


def _keep_hyphen(head: str, tail: str, first: str, words: Counter[str]) -> bool:
    """Is the hyphen at a line end part of the word ("Su-\\n27SK", "Military-\\nTechnical")?

    A digit or a capital after it keeps it (designations, compounds of names). Otherwise the
    text itself decides: the hyphenated form seen elsewhere keeps it, the joined word seen
    elsewhere drops it, and by default it is a syllable break and goes.
    """
    if first.isdigit() or first.isupper():
        return True
    if not head or not tail:
        return False
    hyphenated = f"{head}-{tail}".lower()
    joined = f"{head}{tail}".lower()
    if words[joined] > 0:
        return False
    if words[hyphenated] > 0 or words[f"-{tail.lower()}"] > 0 or words[f"{head.lower()}-"] > 0:
        return True
    # Two whole words on either side ("long-\nrange") make a compound, not a syllable break.
    return min(len(head), len(tail)) >= 3 and words[head.lower()] > 0 and words[tail.lower()] > 0


def running_heads(text: str) -> set[str]:
    """Running heads of a text given as a whole, for cleaning it in parts (PDF pages)."""
    return _running_heads([_SPACES.sub(" ", line).strip() for line in text.split("\n")])


def _running_heads(lines: list[str]) -> set[str]:
    """Short lines repeated on three or more pages (running heads/feet) and bare page numbers."""
    counts = Counter(line for line in lines if line and len(line) <= 60)
    heads = {line for line, n in counts.items() if n >= 3 and not line.endswith((".", "?", "!"))}
    heads.update(line for line in counts if re.fullmatch(r"(?:page\s*)?\d{1,4}", line, re.I))
    return heads


def copy_into(
    sources_dir: Path, path: Path, name: str | None = None,
    max_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
) -> tuple[str, bool]:
    """Copy a file into the sources folder; (source id, whether anything was copied).

    The same content already there is a no-op; another file of that name is never
    overwritten, so adding cannot lose a source.
    """
    from .readers import READERS

    if path.is_symlink():
        raise SourceError(
            f"{path} is a symbolic link; add the file it points to ({os.path.realpath(path)}) "
            "so that it is plain which file is published"
        )
    if not path.is_file():
        raise SourceError(f"{path}: no such file, or not a regular file")
    name = name or path.name
    if Path(name).suffix.lower() not in READERS:
        raise SourceError(
            f"{path}: unsupported file type {Path(name).suffix or '(none)'}; supported: "
            f"{', '.join(sorted(READERS))}"
        )
    sources_dir.mkdir(parents=True, exist_ok=True)
    target = sources_dir / name
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise SourceError(
            f"{target} exists and is a symbolic link or special file; remove it first"
        )
    data = read_source_bytes(path, str(path), max_bytes)
    if len(data) > max_bytes:
        raise SourceError(f"{path}: over the limit of {max_bytes / 1048576:g} MB "
                          "(QA_MAX_SOURCE_MB); split it into parts or raise QA_MAX_SOURCE_MB")
    if target.exists():
        if target.read_bytes() == data:
            return name, False
        raise SourceError(
            f"{target} exists with other content; rename the new file or remove the old one"
        )
    tmp = target.with_name(f".{name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return name, True
