"""Recording events to JSON Lines: one payload a line, written through at once, secrets redacted.

Each line is handed to the kernel as soon as the event arrives, so a recorder killed at any moment
leaves every earlier event on disk and at worst one partial last line, which the reader tolerates.
A recording is valid input to ``relay parse``, ``relay replay`` and ``jq``.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from relay_cli import protocol

__all__ = ["Recorder", "RecordingError"]


class RecordingError(Exception):
    """The recording file cannot be opened or written; the message names the file."""


class Recorder:
    """Appends payloads to a file created with mode 0600 (events carry phone numbers and message bodies)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RecordingError(f"cannot record to {path}: {exc.strerror or exc}") from None

    def write(self, payload: dict[str, Any], data: bytes | None = None) -> None:
        payload, data = protocol.without_secrets(payload, data)
        line = data if data is not None else orjson.dumps(payload)
        if not line.endswith(b"\n"):
            line += b"\n"
        try:
            while line:
                line = line[os.write(self._fd, line) :]
        except OSError as exc:
            raise RecordingError(f"cannot write to {self.path}: {exc.strerror or exc}") from None
        self.lines += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
