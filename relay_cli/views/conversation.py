"""The one pairing of a RELAY conversation's frames: each request with its answer, each event with its ACK.

Both views of frames (``relay serve``'s and ``relay proxy``'s) and the proxy's summary need to know, of an
answer, which request it answers and how long that took, and of an event, whether and how fast the app ACKed
it. That is worked out here, once per frame, from the frame decoded once: the views render what
:meth:`Conversation.see` found and never decode a frame themselves.

An answer is paired by the connection it came on, the direction of the frame that asked (the other one) and
the id, so two connections (or both ends of one) using the same ids never mix. Memory is bounded: a peer that
never answers, or an app that never ACKs, cannot make the pairing grow past :data:`PENDING` entries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import orjson

from relay_cli.protocol import (
    APP_TO_RELAY,
    FRAME_EXCERPT,
    MAX_FRAME,
    RELAY_TO_APP,
    FrameExcerpt,
    Kind,
    too_many_containers,
)

__all__ = ["ACK_WAIT", "NO_ACK", "PENDING", "Asked", "Conversation", "Exchange"]

ACK_WAIT: Final = 5.0
"""Seconds an event may go un-ACKed before it is flagged (RELAY resends un-ACKed events on a resume)."""
NO_ACK: Final = f"no ACK in {ACK_WAIT:g} s"
"""What an event un-ACKed for :data:`ACK_WAIT` seconds is flagged with."""
PENDING: Final = 10_000
"""Requests and events awaiting their answer, kept for pairing; beyond it the oldest are given up on."""

_METHOD_KINDS: Final = {kind.value: kind for kind in Kind if kind.value.startswith("signalwire.")}
_OTHER: Final = {APP_TO_RELAY: RELAY_TO_APP, RELAY_TO_APP: APP_TO_RELAY}
_NO_PARAMS: Final[dict[str, Any]] = {}
_TOO_BIG: Final = f"over the {MAX_FRAME >> 20} MiB frame limit"
_CUT: Final = f"{_TOO_BIG} (recorded: its first {FRAME_EXCERPT >> 10} KiB)"
_EVENT: Final = Kind.EVENT
_RESULT: Final = Kind.RESULT
_ERROR: Final = Kind.ERROR
_REQUEST: Final = Kind.REQUEST
"""Kinds as module constants: an enum member looked up on its class costs 70 ns, on every frame."""


@dataclass(slots=True, eq=False)
class Asked:
    """A request (or an event) awaiting its answer: what the answer's line and the summary say of it.

    Kept small on purpose, without the frame: thousands may wait at once. ``eq=False``: each is itself, and can
    key a view's table of held lines.
    """

    kind: Kind
    """The request's kind: :attr:`Kind.EVENT` for an event (its answer is the ACK), :attr:`Kind.PING`..."""
    method: str
    """The method, or for an event its event type."""
    call: str
    time: float
    key: tuple[int, str, Any]
    """(connection, direction, id): what its answer is paired by."""
    shown: bool = True
    """Whether a view showed the request (a filter may hide it): its answer follows it."""
    acked: bool = False
    """An event: its ACK (or an error answer) has come."""

    @property
    def connection(self) -> int:
        return self.key[0]


@dataclass(slots=True)
class Exchange:
    """What one frame is in its conversation."""

    direction: str
    time: float
    connection: int
    raw: bytes
    kind: Kind | None
    """None: not JSON-RPC (or binary, or not JSON, or too big to decode)."""
    frame: Any
    """The decoded value (None when not JSON, or not decoded)."""
    method: str
    """A request's method; an answer's request's method (``""`` when unpaired); an event's event type."""
    call: str
    """The call (or message) the frame concerns; an answer: its request's. ``""`` when none."""
    took: float | None
    """An answer: seconds since its request; an event's ACK: the ACK latency."""
    problem: str
    """``""``, or why the frame is flagged: ``"not JSON"``, ``"over the 10 MiB frame limit"``..."""
    id: Any = None
    """The JSON-RPC id (None when absent or not a string or number)."""
    asked: Asked | None = None
    """A request or event with an id: its own entry; an answer: its request's (None when unpaired)."""


def _not_json(raw: bytes) -> str:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return "not UTF-8"
    return "not JSON"


def _flagged(direction: str, at: float, connection: int, raw: bytes, problem: str, frame: Any = None) -> Exchange:
    return Exchange(direction, at, connection, raw, None, frame, "", "", None, problem)


class Conversation:
    """Pairs every frame of any number of connections with the frames it answers or is answered by.

    :meth:`see` is called with every frame in the order it crossed the wire; :meth:`overdue` (with the clock, or
    a recording's times) names each event still un-ACKed :data:`ACK_WAIT` seconds after it passed, once;
    :meth:`closed` names a connection's un-ACKed events when it ends and forgets what it awaited.
    """

    __slots__ = ("_events", "_given_up", "_pending", "limit")

    def __init__(self, limit: int = PENDING) -> None:
        self.limit = limit
        self._pending: dict[tuple[int, str, Any], Asked] = {}
        """What awaits an answer, by (connection, direction of the asker, id), oldest first."""
        self._events: deque[Asked] = deque()
        """Events in the order they passed, ACKed or not, until :meth:`overdue` looks past them."""
        self._given_up: deque[Asked] = deque(maxlen=limit)
        """Un-ACKed events pushed out of ``_events`` by newer ones: overdue at the next look."""

    def __len__(self) -> int:
        """Requests and events awaiting an answer."""
        return len(self._pending)

    def see(self, direction: str, at: float, connection: int, raw: bytes, text: bool = True) -> Exchange:
        """What the frame is: decoded once, paired with what it answers, remembered when it asks."""
        if not text:
            return _flagged(direction, at, connection, raw, "binary frame")
        if len(raw) > MAX_FRAME:
            return _flagged(direction, at, connection, raw, _TOO_BIG)
        if len(raw) > 2**20 and too_many_containers(raw):  # the test itself counts only big frames
            return _flagged(direction, at, connection, raw, "too many arrays and objects to decode")
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            cut = raw.__class__ is FrameExcerpt  # a recording's excerpt of a frame too big to keep whole
            return _flagged(direction, at, connection, raw, _CUT if cut else _not_json(raw))
        if frame.__class__ is not dict:
            return _flagged(direction, at, connection, raw, "not a JSON-RPC object", frame)
        fid = frame.get("id")
        if fid.__class__ is not str and fid.__class__ is not int:
            fid = None
        method = frame.get("method")
        if method is None:  # an answer
            if "error" in frame:
                kind = _ERROR
            elif "result" in frame:
                kind = _RESULT
            else:
                return _flagged(direction, at, connection, raw, "neither a request nor an answer", frame)
            if fid is None:
                return Exchange(direction, at, connection, raw, kind, frame, "", "", None, "")
            asked = self._pending.pop((connection, _OTHER.get(direction, direction), fid), None)
            if asked is None:
                return Exchange(direction, at, connection, raw, kind, frame, "", "", None, "", fid)
            asked.acked = True
            took = at - asked.time
            return Exchange(
                direction, at, connection, raw, kind, frame, asked.method, asked.call, took if took > 0 else 0.0,
                "", fid, asked,
            )  # fmt: skip
        if method.__class__ is not str:
            return _flagged(direction, at, connection, raw, "method is not a string", frame)
        kind = _METHOD_KINDS.get(method, _REQUEST)
        params = frame.get("params")
        if params.__class__ is not dict:
            params = _NO_PARAMS
        if kind is _EVENT:
            name = params.get("event_type")
            if name.__class__ is not str:
                name = ""
            inner = params.get("params")
            call = inner.get("call_id") if inner.__class__ is dict else None
        else:
            name = method
            call = params.get("call_id")
        if call.__class__ is not str:
            call = ""
        if fid is None:
            return Exchange(direction, at, connection, raw, kind, frame, name, call, None, "")
        key = (connection, direction, fid)
        asked = Asked(kind, name, call, at, key)
        pending = self._pending
        pending[key] = asked  # the same id again before its answer: the first is no longer awaited
        if len(pending) > self.limit:
            del pending[next(iter(pending))]
        if kind is _EVENT:
            events = self._events
            events.append(asked)
            if len(events) > self.limit:
                old = events.popleft()
                if not old.acked:
                    self._given_up.append(old)
        return Exchange(direction, at, connection, raw, kind, frame, name, call, None, "", fid, asked)

    def overdue(self, now: float) -> list[Exchange]:
        """The events still un-ACKed :data:`ACK_WAIT` seconds before ``now``, each named once.

        Their answer may still come, and is still paired (its latency then says how late it was).
        """
        found = [self._late(asked, NO_ACK) for asked in self._given_up]
        self._given_up.clear()
        events = self._events
        deadline = now - ACK_WAIT
        while events and events[0].time <= deadline:
            asked = events.popleft()
            if not asked.acked:
                found.append(self._late(asked, NO_ACK))
        return found

    def closed(self, connection: int) -> list[Exchange]:
        """A connection ended: its events never ACKed, and nothing more is awaited on it."""
        ended = [a for a in self._given_up if a.key[0] == connection]
        if ended:
            kept = [a for a in self._given_up if a.key[0] != connection]
            self._given_up.clear()
            self._given_up.extend(kept)
        if any(a.key[0] == connection for a in self._events):
            ended += [a for a in self._events if a.key[0] == connection and not a.acked]
            kept = [a for a in self._events if a.key[0] != connection]
            self._events.clear()
            self._events.extend(kept)
        for key in [key for key in self._pending if key[0] == connection]:
            del self._pending[key]
        return [self._late(asked, "no ACK (connection closed)") for asked in ended]

    @staticmethod
    def _late(asked: Asked, problem: str) -> Exchange:
        """An un-ACKed event as remembered: its bytes and decoded frame were not kept."""
        connection, direction, fid = asked.key
        return Exchange(
            direction, asked.time, connection, b"", _EVENT, None, asked.method, asked.call, None, problem, fid,
            asked,
        )  # fmt: skip
