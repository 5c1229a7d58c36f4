"""Recording events to JSON Lines: one payload a line, written through at once, secrets redacted.

Each line is handed to the kernel as soon as the event arrives, in one ``write(2)``, so a recorder
killed at any moment leaves every earlier event on disk and at worst one partial last line, which the
reader tolerates. Appending to such a file first ends that fragment with a newline, so it stays one bad
line and the next event is whole. A recording is valid input to ``relay parse``, ``relay replay`` and ``jq``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import orjson

from relay_cli import protocol
from relay_cli.errors import RelayError

__all__ = ["Recorder", "RecordingError"]

_FLAGS = os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW


class RecordingError(RelayError):
    """The recording file cannot be opened or written; the message names the file."""


class Recorder:
    """Appends payloads to a file of mode 0600 (events carry phone numbers and message bodies).

    The path must not be a symbolic link: a link planted where a recording is expected would send the
    events, and the mode change, to a file of the planter's choosing. An existing regular file is made
    0600 through the open descriptor, so it is the file written to that changes, whatever the path does.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        self._fd = -1
        try:
            self._fd, readable = _open(path)
            info = os.fstat(self._fd)
            if stat.S_ISREG(info.st_mode):
                if stat.S_IMODE(info.st_mode) != 0o600:
                    _private(self._fd, path)
                if info.st_size and not (readable and os.pread(self._fd, 1, info.st_size - 1) == b"\n"):
                    # Unreadable (a write-only file), a blank line is written instead: readers skip it.
                    self._write(b"\n")
        except RecordingError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            if exc.errno == errno.ELOOP:
                raise RecordingError(f"cannot record to {path}: it is a symbolic link; give the file itself") from None
            raise RecordingError(f"cannot record to {path}: {exc.strerror or exc}") from None

    def write(self, payload: dict[str, Any], data: bytes | None = None) -> None:
        payload, data = protocol.without_secrets(payload, data)
        line = data if data is not None else orjson.dumps(payload)
        if not line.endswith(b"\n"):
            line += b"\n"
        try:
            self._write(line)
        except OSError as exc:
            raise RecordingError(f"cannot write to {self.path}: {exc.strerror or exc}") from None
        self.lines += 1

    def _write(self, line: bytes) -> None:
        """One ``write(2)`` a line; only a short write (a disk filling up) takes more."""
        while line:
            line = line[os.write(self._fd, line) :]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open(path: str) -> tuple[int, bool]:
    """The descriptor, opened for reading too where allowed, to look at the file's last byte."""
    try:
        return os.open(path, os.O_RDWR | _FLAGS, 0o600), True
    except PermissionError:
        return os.open(path, os.O_WRONLY | _FLAGS, 0o600), False


def _private(fd: int, path: str) -> None:
    """Make an existing recording 0600, as a new one is, rather than refuse it: the user asked to append
    to it, and from now on the events it gains are private. A file relay may not chmod is refused."""
    try:
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise RecordingError(
            f"cannot record to {path}: cannot make it private (mode 0600): {exc.strerror or exc}"
        ) from None
