"""Recordings the emulator can hand out: short, valid WAV files a player or a speech pipeline can open.

A ``calling.call.record`` event's ``url`` points at the control plane, which answers with :func:`wav` of the
recording's duration: 8 kHz mono 16-bit PCM (what telephony records), a quiet 440 Hz tone so it is audibly not
empty. Durations are capped: a URL must never make the emulator build a huge file.
"""

from __future__ import annotations

import io
import math
import struct
import wave

__all__ = ["MAX_SECONDS", "RATE", "wav"]

RATE = 8000
MAX_SECONDS = 60.0


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
