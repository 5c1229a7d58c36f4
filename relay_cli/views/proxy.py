"""What ``relay proxy`` (and ``relay replay FILE --frames``) shows of an app's session: every frame both ways.

The lines are ``relay serve``'s (:class:`~relay_cli.views.frames.FrameLines`): requests with the params that
matter, results with their request's method and latency, events as ``relay tail`` prints them. What the proxy adds
is the app's side of each event: its ACK latency goes on the event's own line (`` · ack 0.4 ms``), or a flag when
no ACK came within :data:`~relay_cli.views.conversation.ACK_WAIT` seconds. So an event's line is held until its
ACK, and the lines of the same connection after it wait behind it (each connection's order is kept; other
connections are not held up). A held line is let go by its ACK, by :meth:`ProxyView.tick` once its wait is over,
by its connection closing (:meth:`ProxyView.link`) and at exit (:meth:`ProxyView.finish`).

The ``json`` form is one frame record per frame (``{"dir", "t", "conn", "frame"}``, as ``relay serve`` writes
them), never held. :attr:`ProxyView.stats` sees every frame, whatever the filter shows.

This module knows nothing of sockets: a connection's opening and closing come in as anything with the fields of
:class:`LinkInfo` (the proxy's ``Link`` has them).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from relay_cli.errors import UsageError
from relay_cli.protocol import Kind
from relay_cli.views.conversation import NO_ACK, Asked, Conversation, Exchange
from relay_cli.views.frames import FrameLines, FrameRecords, millis
from relay_cli.views.printers import cells, fit
from relay_cli.views.proxystats import ProxyStats
from relay_cli.views.text import ALERT, Style

if TYPE_CHECKING:
    from relay_cli.pipeline.filters import FrameFilter

__all__ = ["HELD", "LinkInfo", "LinkLike", "ProxyView"]

HELD: Final = 10_000
"""Lines one connection may hold behind an un-ACKed event; past it the oldest event's line goes out as it is."""
_CLOSED: Final = "no ACK, closed"
_AT_EXIT: Final = "no ACK"
_PENDING_ACK: Final = "ACK pending"
_RESERVE: Final = len(" · ack 9999 ms")
"""Cells an event's line leaves free for its ACK latency; a longer flag is fitted when it is added."""
_SGR: Final = re.compile("(\x1b\\[[0-9;]*m)")
_ANSWERS: Final = (Kind.RESULT, Kind.ERROR)
_EVENT: Final = Kind.EVENT
_RESULT: Final = Kind.RESULT
_ERROR: Final = Kind.ERROR
"""Kinds as module constants: an enum member looked up on its class costs 70 ns, on every frame."""


class LinkLike(Protocol):
    """What :meth:`ProxyView.link` reads of a connection's opening or closing."""

    @property
    def connection(self) -> int: ...
    @property
    def what(self) -> str: ...  # "open" | "refused" | "closed"
    @property
    def at(self) -> float: ...
    @property
    def code(self) -> int | None: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A connection's opening or closing, for callers without the proxy's ``Link`` (tests, replays)."""

    connection: int
    what: str
    at: float
    code: int | None = None
    reason: str = ""


class _Line:
    """A line in its connection's queue: ready to go, or an event's line waiting for its ACK."""

    __slots__ = ("asked", "text", "waiting")

    def __init__(self, text: bytes, asked: Asked | None = None) -> None:
        self.text = text
        self.asked = asked
        self.waiting = asked is not None


class ProxyView:
    """Turns every frame both ways into lines (or frame records) for stdout, and counts them in :attr:`stats`.

    ``style``, ``json``, ``verbose``, ``width``, ``terminal`` and ``ascii`` are :class:`FrameView`'s options;
    ``accept`` decides which frames are shown (all, when None); with ``lines`` False (``-o none``) frames are only
    counted, nothing rendered. Each method returns the bytes ready to write
    now, ``b""`` when there are none; none raises on what came over the wire. A ``--call-id`` prefix found to
    match two ids is kept in :attr:`error` (the frames of the second id are hidden), for the caller to stop on.
    """

    def __init__(
        self,
        style: Style,
        *,
        json: bool = False,
        verbose: bool = False,
        width: int | None = None,
        terminal: bool = False,
        ascii: bool = False,
        accept: FrameFilter | None = None,
        lines: bool = True,
    ) -> None:
        self.style = style
        self.lines = lines
        self.json = json
        self.verbose = verbose
        self.width = width
        self.accept = accept if accept is not None and accept.active else None
        self.stats = ProxyStats()
        self.conversation = Conversation()
        self.last: Exchange | None = None
        """The last frame seen, decoded: for a caller that needs its value too (``relay proxy --record``)."""
        self.error: UsageError | None = None
        """The first filter error met while running (an ambiguous ``--call-id`` prefix)."""
        self._see = self.conversation.see
        self._count = self.stats.see
        self._lines = FrameLines(style, verbose=verbose, width=width, ascii=ascii, reserve=_RESERVE, problems=True)
        self._records = FrameRecords(terminal)
        self._queues: dict[int, deque[_Line]] = {}
        """Per connection, the lines waiting behind an event's: only while one is waiting."""
        self._held: dict[Asked, _Line] = {}
        self._alert = style.code(ALERT)
        self._reset = style.reset

    # -- the public face ----------------------------------------------------------------------------------

    def frame(self, direction: str, at: float, connection: int, raw: bytes, text: bool = True) -> bytes:
        """One frame as it crossed the wire (``text`` False for a binary one): the lines it lets go."""
        ex = self.last = self._see(direction, at, connection, raw, text)
        self._count(ex)
        shown = True if self.accept is None else self._shown(ex)  # also where an ambiguous --call-id is found
        if not self.lines:
            return b""
        if self.json:
            return self._records(direction, at, connection, ex.kind, raw, ex.frame) if shown else b""
        kind = ex.kind
        asked = ex.asked
        queue = self._queues.get(connection)
        if queue is not None and asked is not None and (kind is _RESULT or kind is _ERROR):
            held = self._held.pop(asked, None)
            if held is not None:
                self._ack(held, ex)
        line = self._lines(ex) if shown else b""
        if kind is _EVENT and asked is not None and line:
            entry = _Line(line, asked)
            self._held[asked] = entry
            if queue is None:
                self._queues[connection] = deque((entry,))
                return b""
            queue.append(entry)
            if len(queue) > HELD:
                self._release(queue, _PENDING_ACK, alert=False)
            return self._flush(connection, queue)
        if queue is None:
            return line
        if line:
            queue.append(_Line(line))
        return self._flush(connection, queue)

    def tick(self, now: float) -> bytes:
        """Lines let go because their event's ACK is overdue at ``now`` (the clock, or a recording's time)."""
        overdue = self.conversation.overdue(now)
        if not overdue:
            return b""
        self.stats.missing += len(overdue)
        return self._flag(overdue, NO_ACK)

    def link(self, link: LinkLike) -> bytes:
        """A connection opened, was refused or closed; a closed one's held lines go out, flagged."""
        self.stats.link(link.what, link.connection)
        if link.what != "closed":
            return b""
        ended = self.conversation.closed(link.connection)
        self.stats.missing += len(ended)
        out = self._flag(ended, _CLOSED)
        queue = self._queues.pop(link.connection, None)
        if queue is None:
            return out
        for entry in queue:
            self._release_entry(entry, _CLOSED)
        return out + b"".join(entry.text for entry in queue)

    def finish(self) -> bytes:
        """At exit: every held line, flagged as still without its ACK."""
        self.stats.awaiting += len(self.conversation.overdue(math.inf))
        out = []
        for connection in sorted(self._queues):
            for entry in self._queues[connection]:
                self._release_entry(entry, _AT_EXIT)
                out.append(entry.text)
        self._queues.clear()
        self._held.clear()
        return b"".join(out)

    # -- holding lines ------------------------------------------------------------------------------------

    def _flag(self, events: list[Exchange], flag: str) -> bytes:
        if self.json or not self._held:
            return b""
        out = []
        for ex in events:
            entry = self._held.pop(ex.asked, None) if ex.asked is not None else None
            if entry is not None:
                entry.text = self._suffixed(entry.text, flag, alert=True)
                entry.waiting = False
                queue = self._queues.get(ex.connection)
                if queue is not None:
                    out.append(self._flush(ex.connection, queue))
        return b"".join(out)

    def _ack(self, entry: _Line, ex: Exchange) -> None:
        took = f" {millis(ex.took)}" if ex.took is not None else ""
        if ex.kind is _ERROR:
            entry.text = self._suffixed(entry.text, f"ack error{took}", alert=True)
        else:
            entry.text = self._suffixed(entry.text, f"ack{took}", alert=False)
        entry.waiting = False

    def _release_entry(self, entry: _Line, flag: str) -> None:
        if entry.waiting:
            entry.text = self._suffixed(entry.text, flag, alert=flag != _PENDING_ACK)
            entry.waiting = False
            if entry.asked is not None:
                self._held.pop(entry.asked, None)

    def _release(self, queue: deque[_Line], flag: str, *, alert: bool) -> None:
        for entry in queue:
            if entry.waiting:
                self._release_entry(entry, flag)
                return

    def _flush(self, connection: int, queue: deque[_Line]) -> bytes:
        if queue[0].waiting:
            return b""
        out = []
        while queue and not queue[0].waiting:
            out.append(queue.popleft().text)
        if not queue:
            del self._queues[connection]
        return b"".join(out)

    def _suffixed(self, line: bytes, note: str, *, alert: bool) -> bytes:
        """``line`` with `` · note`` at its end (before the newline), cut to fit the width when it must be."""
        suffix = f" · {note}"
        body = line[:-1] if line.endswith(b"\n") else line
        if self.width is not None and len(suffix) > _RESERVE:
            body = self._cut(body, self.width - len(suffix))
        shown = f"{self._alert}{suffix}{self._reset}" if alert and self.style.color else suffix
        return body + shown.encode() + b"\n"

    @staticmethod
    def _cut(body: bytes, room: int) -> bytes:
        """The line's visible text cut to ``room`` cells from its end, its colour codes kept."""
        parts = _SGR.split(body.decode("utf-8", "replace"))
        texts = parts[0::2]
        used = sum(cells(t) for t in texts)
        if used <= room:
            return body
        over = used - room
        for i in range(len(texts) - 1, -1, -1):
            size = cells(texts[i])
            if size == 0:
                continue
            keep = max(size - over, 0)
            texts[i] = fit(texts[i], keep) if keep else ""
            if len(texts[i]) and not texts[i].endswith("…") and keep < size:
                texts[i] = texts[i][:-1] + "…"
            over -= size - cells(texts[i])
            if over <= 0:
                break
        parts[0::2] = texts
        return "".join(parts).encode()

    # -- filtering ----------------------------------------------------------------------------------------

    def _shown(self, ex: Exchange) -> bool:
        accept = self.accept
        assert accept is not None
        try:
            if ex.kind in _ANSWERS:
                asked = ex.asked
                return accept.accepts_answer(ex.direction, None if asked is None else asked.shown)
            selected = accept.selects(ex.kind, ex.frame)
        except UsageError as exc:  # a --call-id prefix matching a second id: its frames are not shown
            if self.error is None:
                self.error = exc
            selected = False
        if ex.asked is not None:
            ex.asked.shown = selected  # its answers follow it, whichever way --direction lets through
        return selected and accept.in_direction(ex.direction)
