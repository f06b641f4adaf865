from __future__ import annotations

import os
from pathlib import Path

import pytest

from qa_service.errors import SourceError
from qa_service.sources import clean_markdown, clean_text, load_documents, read_document

from .conftest import SOURCES


def test_pdf_hyphenation_from_the_real_source_is_mended():
    raw = (SOURCES / "kashin-military-technical-cooperation.txt").read_text(encoding="utf-8")
    assert "Rus-\nsia" in raw  # the case as received
    doc = read_document(SOURCES, SOURCES / "kashin-military-technical-cooperation.txt")
    assert "between Russia and China restarted" in doc.text
    assert "Rus-sia" not in doc.text and "Rus- sia" not in doc.text
    # A hyphen before a digit or a capital belongs to the word and stays.
    assert "terminated the key contract on the Su-27SK licensed production" in doc.text
    assert "RD-93" in doc.text and "Military-Technical Cooperation Commission" in doc.text


def test_a_compound_of_two_words_seen_elsewhere_keeps_its_hyphen():
    text = "The long delay and the range of options. A long-\nrange missile."
    assert "long-range missile" in clean_text(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("the Chi-\nnese side", "the Chinese side"),
        ("Su-\n27SK fighters", "Su-27SK fighters"),
        ("Sino-\nRussian ties", "Sino-Russian ties"),
        ("a line that\nwraps here.", "a line that wraps here."),
        # A blank line inside a sentence is a page break, not a paragraph.
        ("contributed to a \n\nsharp downturn.", "contributed to a sharp downturn."),
        ("One ends.\n\nAnother starts.", "One ends.\n\nAnother starts."),
        ("CRISIS\nThe development began.", "CRISIS\n\nThe development began."),
        ("• first item\n• second item", "first item\n\nsecond item"),
        ("volume of $2.2 billion .", "volume of $2.2 billion."),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


def test_running_heads_and_page_numbers_are_dropped():
    pages = [f"RUSSIA AND CHINA REPORT\nText of page {i} goes on.\n{i}\n" for i in range(1, 5)]
    cleaned = clean_text("\n".join(pages))
    assert "REPORT" not in cleaned
    assert "Text of page 3 goes on." in cleaned
    assert "\n3\n" not in cleaned


def test_markdown_markup_is_removed():
    md = ("### Heading\n\n> #### Quote head\n\n![image01](https://i.imgur.com/x.png)\n"
          "▲ __October 1949. Establishment.__ _Shortly after, ties begin._\n<excerpt/>\n")
    cleaned = clean_markdown(md)
    assert "imgur" not in cleaned and "__" not in cleaned and "<excerpt/>" not in cleaned
    assert "#" not in cleaned and "▲" not in cleaned
    assert "October 1949. Establishment. Shortly after, ties begin." in cleaned


def test_front_matter_becomes_metadata():
    docs, skipped = load_documents(SOURCES)
    assert not skipped
    by_id = {d.source: d for d in docs}
    csis = by_id["csis-china-russia-relations.md"]
    assert csis.title == "China-Russia Relations"
    assert csis.metadata["author"] == "CSIS China Power Team"
    assert csis.metadata["date"].startswith("2022-06-29")
    assert not csis.text.startswith("---")
    kashin = by_id["kashin-military-technical-cooperation.txt"]
    assert kashin.metadata["author"] == "Vasily Kashin"
    assert by_id["rostec-cooperation-with-china.txt"].title == "Cooperation with China"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blob.txt", b"\x00\x01\x02binary" * 50, "binary"),
        ("notes.docx", b"PK\x03\x04", "unsupported file type .docx"),
        ("bad.md", b"---\ntitle: [unclosed\n---\nSome body text here and more.", "front matter"),
    ],
)
def test_unreadable_files_are_reported_by_name(tmp_path: Path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError, match=reason) as info:
        read_document(tmp_path, tmp_path / name)
    assert name in info.value.message


def test_hidden_files_are_not_sources(tmp_path: Path):
    (tmp_path / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "a.txt").write_text("Some words are here for the test.", encoding="utf-8")
    docs, skipped = load_documents(tmp_path)
    assert [d.source for d in docs] == ["a.txt"] and not skipped


def test_missing_sources_folder_says_what_to_do(tmp_path: Path):
    with pytest.raises(SourceError, match="QA_SOURCES_DIR"):
        load_documents(tmp_path / "nope")


def _sources_with_links(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    (folder / "sub").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("The secret password is hunter two and nobody should read it.")
    (folder / "a.txt").write_text("Some words are here for the test.", encoding="utf-8")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "secret.txt").symlink_to(secret)
    (folder / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (folder / "outside").symlink_to(tmp_path, target_is_directory=True)
    (folder / "inside.txt").symlink_to(folder / "a.txt")  # stays in the folder: followed
    os.mkfifo(folder / "pipe.txt")
    return folder


def test_links_out_of_the_folder_and_special_files_are_refused_by_name(tmp_path: Path):
    docs, skipped = load_documents(_sources_with_links(tmp_path))
    assert sorted(d.source for d in docs) == ["a.txt", "inside.txt"]
    assert all("hunter" not in d.text and "root:" not in d.text for d in docs)
    reasons = {s.source: s.reason for s in skipped}
    assert set(reasons) == {"passwd.txt", "secret.txt", "dangling.txt", "outside", "pipe.txt"}
    assert "outside the sources folder" in reasons["passwd.txt"]
    assert "outside the sources folder" in reasons["secret.txt"]
    assert "broken symbolic link" in reasons["dangling.txt"]
    assert "fifo" in reasons["pipe.txt"]
    assert all(reason.startswith(source) for source, reason in reasons.items())


def test_a_file_over_the_size_limit_is_named_with_the_setting(tmp_path: Path):
    (tmp_path / "big.txt").write_text("Words here. " * 200_000)  # 2.4 MB
    (tmp_path / "a.txt").write_text("Some words are here for the test.", encoding="utf-8")
    docs, skipped = load_documents(tmp_path, max_bytes=1024 * 1024)
    assert [d.source for d in docs] == ["a.txt"]
    assert skipped[0].source == "big.txt" and "QA_MAX_SOURCE_MB" in skipped[0].reason


@pytest.mark.parametrize("kind", ["link_in", "target_link"])
def test_add_refuses_links(tmp_path: Path, kind):
    from qa_service.sources import copy_into

    folder = tmp_path / "sources"
    folder.mkdir()
    real = tmp_path / "doc.txt"
    real.write_text("Some words are here for the test.")
    if kind == "link_in":
        (tmp_path / "link.txt").symlink_to("/etc/passwd")
        with pytest.raises(SourceError, match="symbolic link"):
            copy_into(folder, tmp_path / "link.txt")
    else:
        (folder / "doc.txt").symlink_to("/etc/passwd")
        with pytest.raises(SourceError, match="symbolic link or special file"):
            copy_into(folder, real)
        assert (folder / "doc.txt").is_symlink()
