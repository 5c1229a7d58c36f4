"""The files the emulator hands out (``relay_cli.emulator.media``) are what a player or a PDF reader opens."""

from __future__ import annotations

import io
import re
import wave

import pytest

from relay_cli.emulator.media import MAX_PAGES, MAX_SECONDS, RATE, pdf, wav


@pytest.mark.parametrize(
    ("seconds", "frames"), [(2.5, int(2.5 * RATE)), (0, int(0.1 * RATE)), (1e9, int(MAX_SECONDS * RATE))]
)
def test_a_recording_is_a_mono_8_khz_16_bit_wav_of_its_clamped_duration(seconds: float, frames: int) -> None:
    with wave.open(io.BytesIO(wav(seconds))) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, RATE)
        assert reader.getnframes() == frames


def objects(document: bytes) -> dict[int, bytes]:
    """Each object of ``document`` by number, found through its cross-reference table, which must be exact."""
    start = int(document.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    table = document[start:].split(b"\ntrailer\n")[0].split(b"\n")
    assert table[0] == b"xref" and table[2] == b"0000000000 65535 f "
    count = int(table[1].split()[1])
    found = {}
    for number, entry in enumerate(table[3 : 3 + count - 1], 1):
        assert len(entry) + 1 == 20 and entry.endswith(b" 00000 n ")  # each entry is 20 bytes with its newline
        offset = int(entry[:10])
        head = b"%d 0 obj\n" % number
        assert document[offset : offset + len(head)] == head
        found[number] = document[offset + len(head) : document.index(b"\nendobj\n", offset)]
    assert f"/Size {count} /Root 1 0 R".encode() in document and document.endswith(b"%EOF\n")
    return found


@pytest.mark.parametrize(("pages", "shown"), [(1, 1), (3, 3), (0, 1), (10_000, MAX_PAGES)])
def test_a_fax_document_is_a_pdf_with_its_clamped_pages_each_with_its_text(pages: int, shown: int) -> None:
    document = pdf(pages, "relay: fax 1234")
    assert document.startswith(b"%PDF-1.4\n")
    found = objects(document)
    assert found[1] == b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = re.fullmatch(rb"<< /Type /Pages /Kids \[(.*)\] /Count (\d+) >>", found[2])
    assert kids is not None and int(kids[2]) == shown and len(kids[1].split(b" R")) - 1 == shown
    for page in range(1, shown + 1):
        assert b"/Parent 2 0 R" in found[2 + 2 * page] and b"/Contents %d 0 R" % (3 + 2 * page) in found[2 + 2 * page]
        stream = found[3 + 2 * page]
        length = int(re.match(rb"<< /Length (\d+) >>\nstream\n", stream)[1])  # type: ignore[index]
        body = stream.split(b"stream\n", 1)[1].removesuffix(b"\nendstream")
        assert len(body) == length and b"(relay: fax 1234 - page %d of %d)" % (page, shown) in body


def test_text_that_would_end_a_pdf_string_is_escaped_and_not_ascii_replaced() -> None:
    document = pdf(1, "a (b) \\ c é")
    assert b"(a \\(b\\) \\\\ c ? - page 1 of 1)" in document
    objects(document)
