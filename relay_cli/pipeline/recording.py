"""Recordings in JSON Lines, written through at once, secrets redacted: events, or frames both ways.

``relay tail --record`` keeps event payloads, one a line (:class:`Recorder`). ``relay serve --record`` (and the
proxy) keep every frame both ways (:class:`FrameRecorder`), each line the frame as it crossed the wire plus one key,
``"_relay": {"dir": "app>relay" | "relay>app", "t": <epoch seconds>, "conn": N}``: a line stays a RELAY frame,
so the readers of event recordings read these too, and :func:`read_frame` gives each frame back. The proxy also
records each connection's end as a line with no frame (:func:`close_line`), which ``read_close`` gives back.

Each line is handed to the kernel as soon as it is made, in one ``write(2)`` (a burst of frames: one for the
burst), so a recorder killed at any moment leaves every earlier line on disk and at worst one partial last line,
which the reader tolerates. Appending to such a file first ends that fragment with a newline, so it stays one bad
line and the next one is whole. A recording is valid input to ``relay parse``, ``relay replay`` and ``jq``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from typing import Any

import orjson

from relay_cli import protocol
from relay_cli.errors import RelayError
from relay_cli.protocol import FRAME_KEY

__all__ = ["FrameRecorder", "Recorder", "RecordingError", "close_line", "frame_line"]

_FLAGS = os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
_WHITESPACE = b" \t\r\n"
_ENCODER_DEPTH = 254
"""orjson encodes values nested this deep at most, but decodes deeper ones: a frame with more containers than this
might not be encoded again by :func:`read_frame`, so it is looked at before it is recorded as it came."""
_NOT_JSON = object()


class RecordingError(RelayError):
    """The recording file cannot be opened or written; the message names the file."""


class _AppendFile:
    """A recording file: mode 0600 (frames and events carry phone numbers and message bodies), appended to.

    The path must not be a symbolic link: a link planted where a recording is expected would send the lines, and
    the mode change, to a file of the planter's choosing. An existing regular file is made 0600 through the open
    descriptor, so it is the file written to that changes, whatever the path does.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        """Lines written."""
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

    def _append(self, data: bytes, lines: int) -> None:
        """Whole lines, in one ``write(2)``."""
        try:
            self._write(data)
        except OSError as exc:
            raise RecordingError(f"cannot write to {self.path}: {exc.strerror or exc}") from None
        self.lines += lines

    def _write(self, data: bytes) -> None:
        """One ``write(2)``; only a short write (a disk filling up) takes more."""
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Recorder(_AppendFile):
    """Appends event payloads, one a line (``relay tail --record``)."""

    def write(self, payload: dict[str, Any], data: bytes | None = None) -> None:
        payload, data = protocol.without_secrets(payload, data)
        line = data if data is not None else orjson.dumps(payload)
        if not line.endswith(b"\n"):
            line += b"\n"
        self._append(line, 1)


class FrameRecorder(_AppendFile):
    """Appends frames both ways, a :func:`frame_line` each (``relay serve --record``, ``relay proxy --record``)."""

    def write(
        self, direction: str, at: float, connection: int, raw: bytes, text: bool = True, decoded: Any = None
    ) -> None:
        """``decoded``: see :func:`frame_line`."""
        self._append(frame_line(direction, at, connection, raw, text, decoded), 1)

    def write_many(self, direction: str, at: float, connection: int, raws: Sequence[bytes], text: bool = True) -> None:
        """Frames that crossed together (a burst of events sent in one write): one ``write(2)`` for them all."""
        if raws:
            self._append(b"".join([frame_line(direction, at, connection, raw, text) for raw in raws]), len(raws))

    def closed(self, close: protocol.RecordedClose) -> None:
        """A connection ended: its :func:`close_line`."""
        self._append(close_line(close), 1)


def close_line(close: protocol.RecordedClose) -> bytes:
    """``{"_relay":{"t":T,"conn":N,"closed":CODE|null,"reason":R,"detail":D}}`` and ``"\n"``: the reason redacted
    as any frame's text is (an app may put anything in it)."""
    meta = {
        "t": close.at,
        "conn": close.connection,
        "closed": close.code,
        "reason": protocol.redact_text(close.reason),
        "detail": close.detail,
    }
    return orjson.dumps({FRAME_KEY: meta}) + b"\n"


def frame_line(direction: str, at: float, connection: int, raw: bytes, text: bool = True, decoded: Any = None) -> bytes:
    """One line: the frame as it crossed the wire with ``,"_relay":{"dir":D,"t":T,"conn":N}`` spliced before its
    closing brace (a JSON object on one line with no secret), else the decoded object re-encoded with secrets
    redacted plus ``"_relay"``; a frame that is not a JSON object: ``{"_relay":{...,"raw":"<redacted text>"}}``
    (binary: ``"binary": true`` too). Always one valid JSON object and ``"\\n"``.

    A JSON object already holding a ``"_relay"`` key is recorded as ``raw`` text too, so that key is not lost or
    doubled. A binary frame's text is redacted as a text frame's would be. Bytes that may hold a secret
    (:func:`~relay_cli.protocol.may_hold_secret`) are never kept: the frame is re-encoded from its redacted value
    (with a key given twice, the value keeps only the last copy while the bytes still hold the first).

    A frame over :data:`~relay_cli.protocol.MAX_FRAME` is not decoded, and not kept whole (a reader refuses so
    long a line): ``{"_relay":{...,"raw":"<its first FRAME_EXCERPT bytes as redacted text>","size":N,
    "truncated":true}}``. One that would take far more memory decoded than its size is recorded as ``raw`` text,
    the string values of its secret keys redacted in the text.

    ``decoded`` is the object ``raw`` decodes to, when the caller has decoded it already (the proxy's view has):
    it is not decoded a second time.
    """
    meta = (protocol.frame_record_head(direction), orjson.dumps(at), protocol.frame_record_tail(connection))
    if len(raw) > protocol.MAX_FRAME:
        shown = orjson.dumps(protocol.redact_text(raw[: protocol.FRAME_EXCERPT].decode("utf-8", "replace")))
        cut = b',"size":%d,"truncated":true' % len(raw)
        return b"".join((b'{"_relay":', *meta, b',"raw":', shown, cut, b"}}\n" if text else b',"binary":true}}\n'))
    value: Any = _NOT_JSON
    exact = False  # ``value`` was decoded from ``raw`` itself, not from its text with bad bytes replaced
    if decoded.__class__ is dict:
        value, exact = decoded, True
    elif not protocol.too_many_containers(raw):
        try:
            value = orjson.loads(raw)
            exact = True
        except orjson.JSONDecodeError:
            value = _decoded_text(raw)
    if text and value.__class__ is dict and FRAME_KEY not in value and (not exact or _encodable(raw, value)):
        try:
            kept = exact and not protocol.may_hold_secret(raw)
            body = raw.strip(_WHITESPACE) if kept else b""
            if not body or b"\n" in body:
                body = orjson.dumps(value if kept else protocol.redact(value))
        except (orjson.JSONEncodeError, RecursionError):
            pass  # nested too deeply to be encoded again: kept as text
        else:
            return b"".join((body[:-1], b"," if value else b"", b'"_relay":', *meta, b"}}\n"))
    shown = orjson.dumps(_shown(raw, value, exact))
    return b"".join((b'{"_relay":', *meta, b',"raw":', shown, b"}}\n" if text else b',"binary":true}}\n'))


def _decoded_text(raw: bytes) -> Any:
    """A frame that is JSON but for bytes that are not UTF-8, decoded with those replaced; else ``_NOT_JSON``."""
    try:
        raw.decode()
    except UnicodeDecodeError:
        try:
            return orjson.loads(raw.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            pass
    return _NOT_JSON


def _encodable(raw: bytes, value: Any) -> bool:
    """Whether a decoded frame can be encoded again: only one with enough containers can nest too deeply."""
    if raw.count(b"[") + raw.count(b"{") <= _ENCODER_DEPTH:
        return True
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


def _shown(raw: bytes, value: Any, exact: bool) -> str:
    """The ``raw`` text of a frame that is not recorded as an object: as it came when it is JSON with no secret;
    else redacted, by walking the value when it decoded, else by searching the text."""
    if value is not _NOT_JSON:
        if exact and not protocol.may_hold_secret(raw):
            return raw.decode()
        try:
            return orjson.dumps(protocol.redact(value)).decode()
        except (orjson.JSONEncodeError, RecursionError):
            pass
    return protocol.redact_text(raw.decode("utf-8", "replace"))


def _open(path: str) -> tuple[int, bool]:
    """The descriptor, opened for reading too where allowed, to look at the file's last byte."""
    try:
        return os.open(path, os.O_RDWR | _FLAGS, 0o600), True
    except PermissionError:
        return os.open(path, os.O_WRONLY | _FLAGS, 0o600), False


def _private(fd: int, path: str) -> None:
    """Make an existing recording 0600, as a new one is, rather than refuse it: the user asked to append
    to it, and from now on the lines it gains are private. A file relay may not chmod is refused."""
    try:
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise RecordingError(
            f"cannot record to {path}: cannot make it private (mode 0600): {exc.strerror or exc}"
        ) from None
