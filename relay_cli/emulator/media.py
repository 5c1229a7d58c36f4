"""Files the emulator hands out: recordings (WAV) and received faxes (PDF), short and valid, so an app's player,
speech pipeline or PDF reader opens them as it would RELAY's.

A ``calling.call.record`` event's ``url`` points at the control plane, which answers with :func:`wav` of the
recording's duration: 8 kHz mono 16-bit PCM (what telephony records), a quiet 440 Hz tone so it is audibly not
empty. A received fax's ``document`` is :func:`pdf`: a page of text for each page faxed. Sizes are capped: a URL
must never make the emulator build a huge file.
"""

from __future__ import annotations

import io
import math
import struct
import wave

__all__ = ["MAX_PAGES", "MAX_SECONDS", "RATE", "pdf", "wav"]

RATE = 8000
MAX_SECONDS = 60.0
MAX_PAGES = 50


def wav(seconds: float) -> bytes:
    """A WAV file of ``seconds`` (clamped to 0.1 .. :data:`MAX_SECONDS`)."""
    seconds = min(max(seconds, 0.1), MAX_SECONDS)
    frames = int(RATE * seconds)
    period = [int(1200 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(RATE // 40)]
    cycle = struct.pack(f"<{len(period)}h", *period)
    body = (cycle * (frames // len(period) + 1))[: frames * 2]
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(body)
    return out.getvalue()


def pdf(pages: int, text: str) -> bytes:
    """A PDF of ``pages`` letter pages (clamped to 1 .. :data:`MAX_PAGES`), each showing ``text`` (ASCII; other
    characters are replaced) and its page number: the objects, then an exact cross-reference table."""
    pages = min(max(pages, 1), MAX_PAGES)
    shown = text.encode("ascii", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for page in range(1, pages + 1):
        stream = b"BT /F1 14 Tf 72 720 Td (%s - page %d of %d) Tj ET" % (shown, page, pages)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
            b" /Contents %d 0 R >>" % (3 + 2 * page)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
