"""Reading events from files and stdin: one reader for ``relay parse`` and ``relay replay``.

Input is told apart by content, not by file name: one JSON object, a JSON array of objects, or JSON
Lines; each object a bare event payload or a JSON-RPC frame. JSON Lines stream line by line, so memory
stays flat however large a recording is, and each bare payload keeps its input bytes so a sink that
prints the input unchanged can write them back without encoding again.
"""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any

import orjson

from relay_cli import protocol
from relay_cli.event import InvalidEvent

__all__ = ["STDIN", "BadLine", "Entry", "InputError", "Source", "entries", "spans", "to_event", "where"]

STDIN = "-"
_FRAME_KEYS = ("jsonrpc", "method")
_WHITESPACE = b" \t\r\n"


class InputError(Exception):
    """The input as a whole cannot be read: missing, unreadable, a directory, or empty."""


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
            yield from _lines(stream, 0)
            return
        line_no = 0
        first = b""
        while not first.strip(_WHITESPACE):
            first = stream.readline()
            line_no += 1
            if not first:
                if follow and not (stop and stop()):
                    time.sleep(poll)
                    line_no -= 1
                    continue
                raise InputError(f"{name}: empty input, no JSON found")
        if first.startswith(b"\xef\xbb\xbf"):
            first = first[3:]
        head = first.lstrip(_WHITESPACE)[:1]
        if head == b"[":
            yield from _document(name, line_no, first + stream.read())
            return
        if head == b"{" and not _parses(first):
            # An object spread over lines, or JSON Lines whose first line is bad: the next line tells.
            second = stream.readline()
            if not (second.strip(_WHITESPACE) and _parses(second)):
                yield from _document(name, line_no, first + second + stream.read())
                return
            yield _line(line_no, first)
            line_no += 1
            first = second
        yield _line(line_no, first)
        line_no = yield from _lines(stream, line_no)
        if follow:
            yield from _follow(stream, line_no, poll, stop)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    finally:
        if source.path != STDIN:
            stream.close()


def _lines(stream: IO[bytes], line_no: int) -> Generator[Entry, None, int]:
    """The rest of a JSON Lines stream, numbered on from ``line_no``; returns the last line's number."""
    loads = orjson.loads
    for line in stream:
        line_no += 1
        try:
            yield line_no, line, loads(line)
        except orjson.JSONDecodeError:
            if line.strip(_WHITESPACE):
                yield _line(line_no, line)
    return line_no


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


def _follow(stream: IO[bytes], line_no: int, poll: float, stop: Callable[[], bool] | None) -> Iterator[Entry]:
    partial = b""
    while not (stop and stop()):
        chunk = stream.readline()
        if not chunk:
            time.sleep(poll)
            continue
        partial += chunk
        if not partial.endswith(b"\n"):
            continue
        line_no += 1
        if partial.strip(_WHITESPACE):
            yield _line(line_no, partial)
        partial = b""


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _line(line_no: int, line: bytes) -> Entry:
    try:
        return line_no, line, orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return line_no, None, BadLine(_json_error(exc), truncated=not line.endswith(b"\n"))


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
    (a connect result, a ping, an error) so it is never mistaken for an empty event. Anything else is
    returned as the payload, for ``parse_event`` to accept or reject with its own message.
    """
    if value.__class__ is not dict or not (
        "jsonrpc" in value or "method" in value or ("id" in value and ("result" in value or "error" in value))
    ):
        return value, None
    try:
        kind = protocol.classify(value)
    except protocol.FrameError as exc:
        raise InvalidEvent(f"not a JSON-RPC frame: {exc}") from None
    if kind is protocol.Kind.EVENT:
        params = value.get("params")
        if not isinstance(params, dict):
            raise InvalidEvent("a signalwire.event frame whose params is not an object")
        return params, None
    return None, protocol.describe(value)
