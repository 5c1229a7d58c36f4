"""Reading events from files and stdin: one reader for ``relay parse`` and ``relay replay``.

Input is told apart by content, not by file name: one JSON object, a JSON array of objects, or JSON
Lines; each object a bare event payload or a JSON-RPC frame, which in a two-way recording carries its
``"_relay"`` key (:func:`read_frame`). JSON Lines stream line by line, so memory stays flat however large a
recording is, and each bare payload keeps its input bytes so a sink that prints the input unchanged can write
them back without encoding again.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import stat
import time
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any

import orjson

from relay_cli import protocol
from relay_cli.errors import RelayError
from relay_cli.event import InvalidEvent
from relay_cli.protocol import APP_TO_RELAY, FRAME_KEY, RELAY_TO_APP, RecordedClose, RecordedFrame

__all__ = [
    "MAX_LINE",
    "STDIN",
    "BadLine",
    "Entry",
    "InputError",
    "Notice",
    "RecordedClose",
    "RecordedFrame",
    "Source",
    "entries",
    "read_close",
    "read_frame",
    "recorded_frames",
    "spans",
    "to_event",
    "unencodable",
    "where",
]

STDIN = "-"
MAX_LINE = protocol.MAX_FRAME + 4096
"""The longest line read: no event can be longer than a frame, a two-way recording's line is a frame and its
``"_relay"`` key, and a line that never ends must not fill memory."""
_TOO_LONG = f"line longer than {MAX_LINE >> 20} MiB"
_FRAME_KEYS = ("jsonrpc", "method")
_WHITESPACE = b" \t\r\n"
_HEAD = 4096
# Compressed files people record into and then feed as they are: (magic bytes, name, the tool that reads them).
_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "zcat"),
    (b"BZh", "bzip2", "bzcat"),
    (b"\xfd7zXZ\x00", "xz", "xzcat"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
)


class InputError(RelayError):
    """The input as a whole cannot be read: missing, unreadable, a directory, empty, or not text."""

    def for_command(self, command: str) -> str:
        """The message, for the ``relay`` command that read the input (some suggest a command line)."""
        return str(self)


class _Compressed(InputError):
    """A compressed file, which the user meant to be read decompressed: the message says how."""

    def __init__(self, source: Source, kind: str, tool: str) -> None:
        super().__init__(source.name, kind, tool)
        self.source, self.kind, self.tool = source, kind, tool

    def for_command(self, command: str) -> str:
        if self.source.path == STDIN:
            return f"{self.source.name}: looks like {self.kind}: try ... | {self.tool} | relay {command} -"
        import shlex  # here: only this message needs it

        path = shlex.quote(self.source.path)
        return f"{self.source.name}: looks like {self.kind}: try {self.tool} {path} | relay {command} -"

    def __str__(self) -> str:
        return self.for_command("replay")


def unencodable(exc: Exception) -> str:
    """What is wrong with a decoded value that cannot be encoded again (an ``orjson.JSONEncodeError``, or a
    ``RecursionError`` of a walk over it): in practice, one nested deeper than the encoder goes."""
    text = str(exc)
    if isinstance(exc, RecursionError) or "ecursion" in text:
        return "nested too deeply"
    return f"cannot be encoded again: {text}"


class Notice:
    """Stands in for an entry that is no line at all: something to tell the user about the input as it is read."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class BadLine:
    """Stands in for the value of a line that is not JSON: what is wrong, and whether the line was cut off.

    ``truncated`` marks an unterminated last line, which is what a recorder killed mid-write leaves behind.
    """

    __slots__ = ("message", "truncated")

    def __init__(self, message: str, truncated: bool = False) -> None:
        self.message = message
        self.truncated = truncated


Entry = tuple["int | str", "bytes | None", Any]
"""``(line, raw, value)``: the line number (or ``[index]`` in a JSON array), the bytes of the value when it
had a line of its own, and the decoded value or a :class:`BadLine`. A plain tuple: replay makes a million."""


def where(source: Source, line: int | str) -> str:
    """``FILE:LINE`` for messages, or ``FILE[INDEX]`` for an item of a JSON array."""
    return f"{source.name}{line}" if isinstance(line, str) else f"{source.name}:{line}"


class Source:
    """A named input: a file path, or ``-`` for stdin.

    ``lines`` is a run of whole lines already read from ``path`` (a span cut by :func:`spans`): it is
    read as JSON Lines without looking at its first line, and numbered from 1.
    """

    def __init__(self, path: str, *, stdin: IO[bytes] | None = None, lines: bytes | None = None) -> None:
        self.path = path
        self.name = "<stdin>" if path == STDIN else path
        self.lines = lines
        self._stdin = stdin

    def open(self) -> IO[bytes]:
        if self.lines is not None:
            return io.BytesIO(self.lines)
        if self.path == STDIN:
            return self._stdin if self._stdin is not None else os.fdopen(0, "rb", closefd=False)
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{self.path}: is a directory, not a file") from None
        except PermissionError:
            raise InputError(f"{self.path}: permission denied") from None
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read: {exc.strerror or exc}") from None


def entries(
    source: Source, *, follow: bool = False, poll: float = 0.25, stop: Callable[[], bool] | None = None
) -> Iterator[Entry]:
    """Every JSON value in ``source``, in order, with where it came from.

    With ``follow``, keep reading JSON Lines as the file grows (as ``tail -f`` does) until ``stop()``
    says so; an unterminated last line is then held back until its newline arrives.
    """
    return _read(source, source.open(), follow, poll, stop)


def _read(
    source: Source, stream: IO[bytes], follow: bool, poll: float, stop: Callable[[], bool] | None
) -> Iterator[Entry]:
    name = source.name
    try:
        if source.lines is not None:
            yield from _lines(stream, 0, 1)  # a span of a file whose first line is a good one
            return
        line_no = 0
        first = b""
        while not first.strip(_WHITESPACE):
            first = stream.readline(MAX_LINE + 1)
            line_no += 1
            if not first:
                if follow and not (stop and stop()):
                    time.sleep(poll)
                    line_no -= 1
                    continue
                raise InputError(f"{name}: empty input, no JSON found")
        _check_text(source, first[:_HEAD])
        if first.startswith(b"\xef\xbb\xbf"):
            first = first[3:]
        head = first.lstrip(_WHITESPACE)[:1]
        if head == b"[":
            yield from _document(name, line_no, first + stream.read())
            return
        good = 0
        if _too_long(first):
            yield line_no, None, BadLine(_TOO_LONG)
            _skip_line(stream)
        else:
            if head == b"{" and not _parses(first):
                # An object spread over lines, or JSON Lines whose first line is bad: the next line tells.
                second = stream.readline(MAX_LINE + 1)
                if not (second.strip(_WHITESPACE) and not _too_long(second) and _parses(second)):
                    yield from _document(name, line_no, first + second + stream.read())
                    return
                yield _line(line_no, first, 0)
                line_no += 1
                first = second
            entry = _line(line_no, first, 0)
            good = entry[2].__class__ is not BadLine
            yield entry
        line_no, partial = yield from _lines(stream, line_no, good, follow)
        if follow:
            yield from _follow(source, stream, line_no, partial, poll, stop)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    finally:
        if source.path != STDIN:
            stream.close()


def _check_text(source: Source, head: bytes) -> None:
    """Refuse, in one line, a file that is not text: decoding it line by line would report every line."""
    for magic, kind, tool in _COMPRESSED:
        if head.startswith(magic):
            raise _Compressed(source, kind, tool)
    if b"\0" in head:
        raise InputError(f"{source.name}: looks like a binary file, not JSON")
    if head.lstrip(_WHITESPACE)[:1] in (b"{", b"[") or head.startswith(b"\xef\xbb\xbf"):
        return  # JSON with a bad byte in it: that line is reported, the rest read
    try:
        head.decode()
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3 or len(head) < _HEAD:  # not just a character cut at the end of the head
            raise InputError(f"{source.name}: looks like a binary file, not JSON") from None


def _too_long(line: bytes) -> bool:
    """Whether ``readline(MAX_LINE + 1)`` stopped at the limit rather than at a newline."""
    return len(line) > MAX_LINE and not line.endswith(b"\n")


def _skip_line(stream: IO[bytes]) -> None:
    """Read past the rest of the current line, a chunk at a time."""
    while (chunk := stream.readline(1 << 20)) and not chunk.endswith(b"\n"):
        pass


def _lines(
    stream: IO[bytes], line_no: int, good: int, follow: bool = False
) -> Generator[Entry, None, tuple[int, bytes]]:
    """The rest of a JSON Lines stream, numbered on from ``line_no``, ``good`` being whether any line before was
    good JSON; returns the last line's number and, with ``follow``, an unterminated last line held back.

    The loop decodes and yields, and nothing else: counting, length and truncation checks are for the lines
    that do not decode. A line that decodes is at most ``MAX_LINE`` bytes, newline included, except when its
    first ``MAX_LINE`` bytes are one JSON value and then whitespace: that value is taken, and the rest of its
    line read as a line of its own, which is blank unless it is garbage. The cost of telling that rare line
    apart would fall on every line.
    """
    loads = orjson.loads
    first = line_no
    others = 0  # lines since ``first`` that did not decode, blank ones included
    for line in iter(functools.partial(stream.readline, MAX_LINE + 1), b""):
        line_no += 1
        try:
            yield line_no, line, loads(line)
        except orjson.JSONDecodeError:
            others += 1
            if _too_long(line):
                yield line_no, None, BadLine(_TOO_LONG)
                _skip_line(stream)
            elif follow and not line.endswith(b"\n"):
                return line_no - 1, line
            elif line.strip(_WHITESPACE):
                yield _line(line_no, line, good or line_no - first - others)
    return line_no, b""


def spans(path: str, size: int) -> list[tuple[int, int]]:
    """Cut a JSON Lines file into byte ranges of about ``size`` bytes, each ending just after a newline.

    Only a file whose first line is one JSON object can be cut: an array, or an object spread over
    lines, must be read whole. For any other file, and for one too small to cut, the one range is
    the whole file; for a file that cannot be read, none (reading it whole then says why). Each range
    can be read on its own as ``Source(path, lines=...)``.
    """
    try:
        with open(path, "rb") as stream:
            first = stream.readline()
            end = stream.seek(0, os.SEEK_END)
            if end < 2 * size or not (first.startswith(b"{") and _parses(first)):
                return [(0, end)]
            cuts = [0]
            while cuts[-1] + size < end:
                stream.seek(cuts[-1] + size)
                stream.readline()
                cuts.append(min(stream.tell(), end))
            if cuts[-1] < end:
                cuts.append(end)
    except OSError:
        return []
    return list(itertools.pairwise(cuts))


def _follow(
    source: Source, stream: IO[bytes], line_no: int, partial: bytes, poll: float, stop: Callable[[], bool] | None
) -> Iterator[Entry]:
    """Lines appended to ``stream`` from now on; a file cut shorter than what was read is read again from the top."""
    regular = source.path != STDIN and stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    skipping = False
    while not (stop and stop()):
        chunk = stream.readline(MAX_LINE + 1)
        if not chunk:
            if regular and os.fstat(stream.fileno()).st_size < stream.tell():
                stream.seek(0)
                line_no, partial, skipping = 0, b"", False
                yield "", None, Notice("the file was truncated: reading it again from the top")
                continue
            time.sleep(poll)
            continue
        if skipping:
            skipping = not chunk.endswith(b"\n")
            continue
        partial += chunk
        if not partial.endswith(b"\n"):
            if len(partial) > MAX_LINE:
                line_no += 1
                yield line_no, None, BadLine(_TOO_LONG)
                partial, skipping = b"", True
            continue
        line_no += 1
        if len(partial) > MAX_LINE + 1:
            yield line_no, None, BadLine(_TOO_LONG)
        elif partial.strip(_WHITESPACE):
            yield _line(line_no, partial, 1)
        partial = b""


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _line(line_no: int, line: bytes, good: int) -> Entry:
    """One line decoded; a bad one without its newline is a truncated last line only after a ``good`` one."""
    try:
        return line_no, line, orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return line_no, None, BadLine(_json_error(exc), truncated=good > 0 and not line.endswith(b"\n"))


def _document(name: str, first_line: int, data: bytes) -> Iterator[Entry]:
    """A whole-file JSON document: one object, or an array whose items are reported by position."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield first_line + data.count(b"\n", 0, exc.pos), None, BadLine(_json_error(exc))
        return
    if isinstance(value, list):
        if not value:
            raise InputError(f"{name}: empty JSON array, no events")
        for index, item in enumerate(value):
            yield f"[{index}]", None, item
    else:
        yield first_line, None, value


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"invalid JSON: {exc.msg}"


def to_event(value: Any) -> tuple[Any, str | None]:
    """Split a JSON value into (event payload, None), or (None, what the value is instead).

    A ``signalwire.event`` frame gives its ``params``; any other JSON-RPC frame is named for what it is
    (a connect result, a ping, an error) so it is never mistaken for an empty event. So is a frame of a
    two-way recording that is not JSON-RPC (a line with a valid ``"_relay"`` key): the recording is right to
    hold it, whatever the app sent. Anything else is returned as the payload, for ``parse_event`` to accept or
    reject with its own message.
    """
    if value.__class__ is not dict or not (
        "jsonrpc" in value or "method" in value or ("id" in value and ("result" in value or "error" in value))
    ):
        if value.__class__ is dict and FRAME_KEY in value:
            note = _recorded(value)
            if note is not None:
                return None, note
        return value, None
    try:
        kind = protocol.classify(value)
    except protocol.FrameError as exc:
        note = _recorded(value, f": {exc}") if FRAME_KEY in value else None
        if note is not None:
            return None, note
        raise InvalidEvent(f"not a JSON-RPC frame: {exc}") from None
    if kind is protocol.Kind.EVENT:
        params = value.get("params")
        if not isinstance(params, dict):
            raise InvalidEvent("a signalwire.event frame whose params is not an object")
        return params, None
    return None, protocol.describe(value)


def _recorded(value: dict[str, Any], why: str = "") -> str | None:
    """What a two-way recording's line that is no JSON-RPC frame is (a frame that is not, or a connection's end);
    None when ``value`` is neither."""
    frame = read_frame(value)
    if frame is None:
        close = read_close(value)
        if close is None:
            return None
        how = f"code {close.code}" if close.code is not None else "no close frame"
        by = f" {close.detail}" if close.detail else ""
        return f"a connection's end, not a frame (connection {close.connection} closed{by}, {how})"
    direction, _, connection, raw, text = frame
    where = f" ({direction}, connection {connection})"
    if not text:
        return f"a binary frame, not JSON-RPC{where}"
    if "raw" in value[FRAME_KEY]:  # not a JSON object, or one holding a "_relay" key of its own
        try:
            return protocol.describe(orjson.loads(raw)) + where
        except (orjson.JSONDecodeError, protocol.FrameError):
            pass
    return f"a frame that is not JSON-RPC{why}{where}"


_FRAME_DIRECTIONS = (APP_TO_RELAY, RELAY_TO_APP)


def read_frame(value: Any) -> RecordedFrame | None:
    """A recorded line's ``(direction, at, connection, raw, text)``: ``raw`` re-encoded without ``"_relay"`` (or
    the recorded ``"raw"`` text); None for a line that is not a frame record (no valid ``"_relay"``), or whose frame
    cannot be encoded again (nested deeper than the encoder goes: :func:`frame_line` records such a frame as text).
    A frame recorded cut (``"truncated": true``, one over the frame limit) gives its excerpt as a
    :class:`~relay_cli.protocol.FrameExcerpt`, which says the frame's ``size``.
    """
    if value.__class__ is not dict:
        return None
    meta = value.get(FRAME_KEY)
    if meta.__class__ is not dict:
        return None
    direction, at, connection = meta.get("dir"), meta.get("t"), meta.get("conn")
    if direction not in _FRAME_DIRECTIONS or (at.__class__ is not float and at.__class__ is not int):
        return None
    if connection.__class__ is not int:
        return None
    if "raw" in meta:
        shown = meta["raw"]
        if shown.__class__ is not str:
            return None
        data = shown.encode("utf-8", "replace")
        if meta.get("truncated") is True:
            size = meta.get("size")
            data = protocol.FrameExcerpt(data, size if size.__class__ is int and size > len(data) else len(data))
        return direction, float(at), connection, data, meta.get("binary") is not True
    try:
        raw = orjson.dumps({k: v for k, v in value.items() if k != FRAME_KEY})
    except orjson.JSONEncodeError:
        return None
    return direction, float(at), connection, raw, True


def read_close(value: Any) -> RecordedClose | None:
    """A recorded connection's end (:func:`~relay_cli.pipeline.recording.close_line`); None for any other line."""
    if value.__class__ is not dict or len(value) != 1:
        return None
    meta = value.get(FRAME_KEY)
    if meta.__class__ is not dict or "dir" in meta or "closed" not in meta:
        return None
    at, connection, code = meta.get("t"), meta.get("conn"), meta["closed"]
    reason, detail = meta.get("reason", ""), meta.get("detail", "")
    if (at.__class__ is not float and at.__class__ is not int) or connection.__class__ is not int:
        return None
    if (code is not None and code.__class__ is not int) or reason.__class__ is not str or detail.__class__ is not str:
        return None
    return RecordedClose(float(at), connection, code, reason, detail)


def recorded_frames(
    source: Source, *, follow: bool = False
) -> Iterator[tuple[str, RecordedFrame | RecordedClose | BadLine | Notice | None]]:
    """Each line of a two-way recording, read with the reader of every other recording: ``FILE:LINE`` and its
    frame record or connection's end, None for a line that is neither, or what the reader says of a line it cannot
    read."""
    for line, _, value in entries(source, follow=follow):
        at = where(source, line) if line != "" else source.name
        if isinstance(value, (BadLine, Notice)):
            yield at, value
        else:
            yield at, read_frame(value) or read_close(value)
