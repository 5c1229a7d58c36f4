"""Playback of a two-way recording to an app (``relay serve --playback``), as mitmproxy's server replay and VCR
cassettes answer HTTP: the app's requests get the recorded answers, and the frames the server sent then follow.

A :class:`Recording` is read from the lines of a ``relay serve --record`` or ``relay proxy --record`` file. Its
connections (an app that reconnected) are read as one app's conversation, in the file's order: a reconnect is the
same app carrying on, and the app played to need not drop its socket where the recorded one did. Each recorded
server event is filed under what caused it: the latest earlier app request, or inbound call or message, that
shares its most specific id (``control_id``, then ``tag``, ``message_id``, ``call_id``), else the request just
before it. Inbound calls and messages (``calling.call.receive``, ``messaging.receive``), what follows them, and
events before any request are *timed*: sent at their recorded offset from the recorded ``signalwire.connect``,
counted from the first app's connect. The rest follow their request by their recorded delays. Delays are divided
by the core's ``speed``.

:class:`Playback` answers the app: ``signalwire.connect``, pings and ``signalwire.receive``/``unreceive`` by the
emulator's own session logic (:data:`HOUSEKEEPING`); every other request is matched against the recorded requests
of its method not yet used, in recorded order, by its params: all of them, once the ids the app picks itself
(:data:`APP_IDS`: ``control_id``, ``tag``) are bound to the recorded ones (a fresh recorded id binds to the app's,
an id seen before must be the app's counterpart). Ids the server picks (``call_id``, ``message_id``, ``node_id``,
the space) are the recording's, reused. A request with no match gets the JSON-RPC error :data:`NO_MATCH`, naming
the method and why, and is counted in :attr:`Playback.unmatched`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from relay_cli.emulator.calls import MIN_GAP
from relay_cli.emulator.methods import METHODS
from relay_cli.errors import RelayError
from relay_cli.protocol import (
    APP_TO_RELAY,
    PROTOCOL_EVENT_TYPES,
    RECEIVE,
    RELAY_TO_APP,
    UNRECEIVE,
    FrameError,
    Kind,
    RecordedFrame,
    classify,
    error,
)

if TYPE_CHECKING:
    from relay_cli.emulator.methods import Request
    from relay_cli.emulator.sessions import EmulatorCore, Session

__all__ = [
    "APP_IDS",
    "HOUSEKEEPING",
    "NO_MATCH",
    "STARTS",
    "Frame",
    "Miss",
    "Playback",
    "PlaybackError",
    "Recorded",
    "Recording",
    "first_difference",
    "ignored_params",
]

NO_MATCH = -32050
"""The JSON-RPC error code of a request the recording has no answer for (a server error of relay's own)."""
NO_MATCH_CODE = "PLAYBACK_NO_MATCH"
"""Its ``data.signalwire_error_code``."""
HOUSEKEEPING = frozenset({Kind.CONNECT.value, Kind.PING.value, RECEIVE, UNRECEIVE})
"""Requests the emulator's own session logic answers: neither matched nor counted."""
APP_IDS = ("control_id", "tag")
"""Ids the app picks (the SDK makes a fresh one each run): bound to the recorded ones, rewritten in what follows."""
STARTS = frozenset({"calling.call.receive", "messaging.receive"})
"""Events a far end starts: timed from the session's start, whatever the app asked."""
_ID_KEYS = ("control_id", "tag", "message_id", "call_id")
"""An event's ids, most specific first: which earlier request or start it follows."""
_SHOWN = 60


class PlaybackError(RelayError):
    """The recording cannot be played: unreadable or without a frame; one line naming the file."""


@dataclass(slots=True)
class Frame:
    """A recorded server event to send: where it was recorded, when, and its payload (``params`` of the frame)."""

    where: str
    at: float
    payload: dict[str, Any]


@dataclass(slots=True)
class Recorded:
    """A recorded app request, its recorded answer and the events that followed it (delays from the request)."""

    index: int
    where: str
    at: float
    method: str
    params: dict[str, Any]
    reply: dict[str, Any] | None = None
    """The recorded answer frame (a result or an error); None when the recording has none."""
    follows: list[Frame] = field(default_factory=list)
    asked: bool = False
    """Matched to an app's request during playback."""


@dataclass(frozen=True, slots=True)
class Miss:
    """A request the recording had no answer for: what the app asked and why nothing matched."""

    method: str
    reason: str
    """``"no such method"``, ``"none left"`` or ``"params differ"``."""
    message: str
    param: str = ""
    """The first param that differs (``params.play[0].params.text``), for ``"params differ"``."""
    recorded: str = ""
    """``FILE:LINE`` of the recorded request compared with."""


class _Anchor:
    """Something recorded that events follow: a request, or a start (an inbound call or message)."""

    __slots__ = ("ids", "request")

    def __init__(self, ids: set[str], request: Recorded | None) -> None:
        self.ids = ids
        """The ids it concerns (in its params, its answer, and the events filed under it so far)."""
        self.request = request


class Recording:
    """The requests and timed events of a two-way recording, ready to play; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start: float | None = None
        """The recorded ``signalwire.connect`` time (else the first frame's): offsets of timed events count from it."""
        self.requests: list[Recorded] = []
        self.timed: list[Frame] = []
        """Inbound calls and messages, what follows them, events before any request: by offset from the start."""
        self.frames = 0
        """Frame records read."""
        self.skipped = 0
        """Server frames not played: pings, disconnects, answers to housekeeping, frames that are not JSON-RPC."""
        self.space_id: str | None = None
        self.node_id: str | None = None
        """The server's ids in the recording, which the emulator takes on so every id the app sees agrees."""

    @classmethod
    def read(
        cls, name: str, lines: Iterable[tuple[str, RecordedFrame | str | None]], problem: Callable[[str, str], None]
    ) -> Recording:
        """A recording from its lines, each ``(FILE:LINE, what it holds)``: a frame record's tuple, None for a
        line that is not one, or the message of a line that cannot be read. Bad lines go to ``problem`` and are
        skipped; a file with no frame record at all is a :class:`PlaybackError`."""
        recording = cls(name)
        not_frames: list[str] = []
        frames: list[tuple[str, str, float, int, bytes]] = []
        for where, held in lines:
            if isinstance(held, str):
                problem(where, held)
            elif held is None:
                not_frames.append(where)
            else:
                frames.append((where, held[0], held[1], held[2], held[3]))
        if not frames:
            what = f"{len(not_frames)} line(s), none a frame record" if not_frames else "no frame records"
            raise PlaybackError(
                f"{name}: nothing to play back: {what} (record a session with relay serve --record or"
                " relay proxy --record; an event recording plays with relay serve --replay)"
            )
        for where in not_frames:
            problem(where, 'not a frame record (no valid "_relay" key): skipped')
        recording._file(frames)
        return recording

    @classmethod
    def from_frames(cls, name: str, frames: Iterable[tuple[str, str, float, int, bytes]]) -> Recording:
        """A recording from ``(where, direction, at, connection, raw)`` frames, as a journal gives them."""
        recording = cls(name)
        recording._file(list(frames))
        return recording

    def _file(self, frames: list[tuple[str, str, float, int, bytes]]) -> None:
        """File each frame: requests with their answers, events under what caused them."""
        self.frames += len(frames)
        asked: dict[tuple[int, Any], _Anchor | None] = {}
        anchors: list[_Anchor] = []
        for where, direction, at, conn, raw in frames:
            try:
                frame = orjson.loads(raw)
                kind = classify(frame)
            except (orjson.JSONDecodeError, FrameError):
                self.skipped += direction == RELAY_TO_APP
                continue
            if self.start is None and (direction == APP_TO_RELAY and kind is Kind.CONNECT):
                self.start = at
            if direction == APP_TO_RELAY:
                if kind in (Kind.RESULT, Kind.ERROR) or "id" not in frame:
                    continue  # ACKs and answers to the server's pings; notifications get no answer
                method = frame["method"]
                params = frame.get("params")
                if method in HOUSEKEEPING or not isinstance(params, dict):
                    asked[(conn, _key(frame["id"]))] = None
                    continue
                request = Recorded(len(self.requests), where, at, method, params)
                self.requests.append(request)
                anchor = asked[(conn, _key(frame["id"]))] = _Anchor(_ids(params), request)
                anchors.append(anchor)
            elif kind in (Kind.RESULT, Kind.ERROR):
                answered = asked.pop((conn, _key(frame.get("id"))), None)
                if answered is None or answered.request is None:
                    self.skipped += 1
                    continue
                answered.request.reply = frame
                answered.ids |= _ids(frame.get("result"))
            elif kind is Kind.EVENT and isinstance(frame.get("params"), dict):
                if self.start is None:
                    self.start = at
                self._event(Frame(where, at, frame["params"]), anchors)
            else:
                self.skipped += 1
        if self.start is None:
            self.start = frames[0][2]

    def _event(self, event: Frame, anchors: list[_Anchor]) -> None:
        payload = event.payload
        event_type = payload.get("event_type")
        if event_type in PROTOCOL_EVENT_TYPES:
            self.skipped += 1  # the emulator sends its own authorization state
            return
        params = payload.get("params")
        if isinstance(params, dict):
            space, node = payload.get("space_id"), params.get("node_id")
            if self.space_id is None and isinstance(space, str) and space:
                self.space_id = space
            if self.node_id is None and isinstance(node, str) and node:
                self.node_id = node
        ids = _ids(params)
        if event_type in STARTS:
            self.timed.append(event)
            anchors.append(_Anchor(ids, None))
            return
        anchor = _cause(params, anchors) if isinstance(params, dict) else None
        if anchor is None and anchors:
            anchor = anchors[-1]
        if anchor is None or anchor.request is None:
            self.timed.append(event)
        else:
            anchor.request.follows.append(event)
        if anchor is not None:
            anchor.ids |= ids  # a dialled leg's later events follow the dial


class Playback:
    """Plays ``recording`` to the apps that connect to ``core``; see the module docstring.

    It takes over the core's method table (all but :data:`HOUSEKEEPING` comes here) and the server's ids, and
    starts the timed events when the first session connects.
    """

    def __init__(self, core: EmulatorCore, recording: Recording) -> None:
        self.core = core
        self.recording = recording
        self.matched = 0
        self.unmatched: list[Miss] = []
        self.sent = 0
        """Recorded events sent."""
        self.bound: dict[str, str] = {}
        """Recorded app-picked id → the app's."""
        self._taken: dict[str, str] = {}
        """The app's id → the recorded one it is bound to."""
        self._by_method: dict[str, list[Recorded]] = {}
        for request in recording.requests:
            self._by_method.setdefault(request.method, []).append(request)
        self._current: Session | None = None
        self._started = False
        self.ignored: Mapping[str, frozenset[str]] = {}
        """Params left out of matching (:func:`ignored_params`): key names at any depth, by method ("" for all)."""
        core.methods = {m: h for m, h in METHODS.items() if m in HOUSEKEEPING}
        core.fallback = self.answer
        core.after_connect.append(self.connected)
        if recording.space_id:
            core.space_id = recording.space_id
        if recording.node_id:
            core.node_id = recording.node_id

    # -- what the core calls ---------------------------------------------------------------------------------

    def connected(self, session: Session, restored: bool) -> None:
        """A session connected: timed events go to the newest; the first starts them."""
        self._current = session
        if self._started:
            return
        self._started = True
        recording = self.recording
        start = recording.start or 0.0
        self.core.log(
            f"playback: {len(recording.requests)} recorded request(s) and {len(recording.timed)} timed event(s)"
            f" from {recording.name}"
        )
        for event in recording.timed:
            self._send_later(max(0.0, event.at - start), event, None)

    def answer(self, core: EmulatorCore, req: Request) -> dict[str, Any] | None:
        """A request the emulator does not answer itself: the recorded answer, or :data:`NO_MATCH`."""
        found = self.match(req.method, req.params)
        if isinstance(found, Miss):
            self.unmatched.append(found)
            core.log(f"{req.peer.name}: playback: {found.message}")
            data = {
                "signalwire_error_code": NO_MATCH_CODE,
                "method": found.method,
                "reason": found.reason,
                "param": found.param,
                "recorded": found.recorded,
            }
            return error(req.id, NO_MATCH, found.message, data)
        self.matched += 1
        for event in found.follows:
            self._send_later(event.at - found.at, event, req.session)
        if found.reply is None:
            core.log(f"{req.peer.name}: playback: {req.method} ({found.where}) has no recorded answer: none sent")
            return None
        reply = {**found.reply, "id": req.id}
        if "result" in reply:
            reply["result"] = self.rewrite(reply["result"])
        return reply

    # -- matching --------------------------------------------------------------------------------------------

    def match(self, method: str, params: Mapping[str, Any]) -> Recorded | Miss:
        """The first recorded ``method`` request not yet used whose params match ``params`` (its app ids bound
        from then on), or why there is none."""
        candidates = self._by_method.get(method)
        if not candidates:
            return Miss(method, "no such method", f"{method}: the recording has no {method} request")
        left = [r for r in candidates if not r.asked]
        if not left:
            return Miss(
                method, "none left", f"{method}: no recorded {method} request left (all {len(candidates)} answered)"
            )
        closest: tuple[Recorded, str] | None = None
        ignored = self.ignored.get("", frozenset()) | self.ignored.get(method, frozenset())
        for recorded in left:
            binding: dict[str, str] = {}
            diff = first_difference(params, recorded.params, self.bound, self._taken, binding, ignored=ignored)
            if diff is None:
                recorded.asked = True
                for old, new in binding.items():
                    self.bound[old] = new
                    self._taken[new] = old
                return recorded
            if closest is None or (_same_call(params, recorded.params) and not _same_call(params, closest[0].params)):
                closest = (recorded, diff)
        assert closest is not None
        recorded, diff = closest
        path = diff.split(" ", 1)[0]
        return Miss(
            method,
            "params differ",
            f"{method}: params differ from the next recorded {method} ({recorded.where}): {diff}",
            path,
            recorded.where,
        )

    def unasked(self) -> list[Recorded]:
        """Recorded requests no app asked, in recorded order."""
        return [r for r in self.recording.requests if not r.asked]

    @property
    def diverged(self) -> bool:
        """Whether the app did other than the recording: a request unmatched, or a recorded one never asked
        (what ``--strict`` turns into exit code 1)."""
        return bool(self.unmatched) or any(not r.asked for r in self.recording.requests)

    def summary(self) -> str:
        """The line said at the end: how many requests matched, how many recorded ones were never asked."""
        asked = self.matched + len(self.unmatched)
        unasked = self.unasked()
        line = f"playback: {self.matched} of {asked} request(s) matched the recording"
        line += f", {len(unasked)} recorded request(s) never asked"
        if unasked:
            first = unasked[0]
            line += f" (first: {first.method} at {first.where})"
        unsent = sum(len(r.follows) for r in unasked)
        if unsent:
            line += f"; {unsent} recorded event(s) that follow them not sent"
        return line

    # -- sending ---------------------------------------------------------------------------------------------

    def rewrite(self, value: Any) -> Any:
        """``value`` with each recorded app-picked id (under an :data:`APP_IDS` key, at any depth) the app's."""
        bound = self.bound
        if not bound:
            return value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in APP_IDS and isinstance(v, str):
                    out[k] = bound.get(v, v)
                else:
                    out[k] = self.rewrite(v)
            return out
        if isinstance(value, list):
            return [self.rewrite(v) for v in value]
        return value

    def _send_later(self, delay: float, event: Frame, session: Session | None) -> None:
        core = self.core

        def send() -> None:
            target, current = session, self._current
            if target is None or (target.conn is None and current is not None and current.conn is not None):
                target = current  # the app came back with a fresh session: it carries on there
            if target is None:
                return
            payload = {k: v for k, v in event.payload.items() if k not in ("event_channel", "project_id")}
            payload = self.rewrite(payload)
            payload["timestamp"] = core.wall()
            self.sent += 1
            core.deliver(target, payload)

        core.later(max(delay / core.speed, MIN_GAP), send, scaled=False)


def first_difference(
    app: Any,
    recorded: Any,
    bound: Mapping[str, str],
    taken: Mapping[str, str],
    binding: dict[str, str],
    path: str = "params",
    *,
    ignored: frozenset[str] = frozenset(),
) -> str | None:
    """None when the app's ``app`` matches the recorded ``recorded``, else the first difference: ``"PATH is X,
    recorded Y"``. Under an :data:`APP_IDS` key a recorded id already ``bound`` must be the app's counterpart; a
    fresh one binds (into ``binding``) to the app's, unless the app's is ``taken`` by another recorded id. Keys in
    ``ignored`` are not compared, at any depth: either side may hold them or not."""
    if isinstance(recorded, dict) and isinstance(app, dict):
        for key, want in recorded.items():
            if key in ignored:
                continue
            where = f"{path}.{key}"
            if key not in app:
                return f"{where} is missing, recorded {_shown(want)}"
            got = app[key]
            if key in APP_IDS and isinstance(want, str) and isinstance(got, str):
                problem = _bind(got, want, bound, taken, binding)
                if problem:
                    return f"{where} is {_shown(got)}, {problem}"
                continue
            diff = first_difference(got, want, bound, taken, binding, where, ignored=ignored)
            if diff is not None:
                return diff
        for key in app:
            if key not in recorded and key not in ignored:
                return f"{path}.{key} is {_shown(app[key])}, not in the recording"
        return None
    if isinstance(recorded, list) and isinstance(app, list):
        for i, (got, want) in enumerate(zip(app, recorded, strict=False)):
            diff = first_difference(got, want, bound, taken, binding, f"{path}[{i}]", ignored=ignored)
            if diff is not None:
                return diff
        if len(app) != len(recorded):
            return f"{path} has {len(app)} item(s), recorded {len(recorded)}"
        return None
    if type(app) is type(recorded) and app == recorded:
        return None
    return f"{path} is {_shown(app)}, recorded {_shown(recorded)}"


def ignored_params(specs: Iterable[str]) -> dict[str, frozenset[str]]:
    """What :attr:`Playback.ignored` holds, from ``NAME`` (a param key, ignored in every method's params at any
    depth: ``text``) or ``METHOD:NAME`` (in that method's only: ``calling.play:text``); ValueError for a spec that
    is neither."""
    found: dict[str, set[str]] = {}
    for spec in specs:
        method, _, name = spec.rpartition(":")
        if not name or ":" in method or (spec.count(":") and not method) or any(c.isspace() for c in spec):
            raise ValueError(f"{spec!r}: give a param name (text) or a method and a param name (calling.play:text)")
        found.setdefault(method, set()).add(name)
    return {method: frozenset(names) for method, names in found.items()}


def _bind(got: str, want: str, bound: Mapping[str, str], taken: Mapping[str, str], binding: dict[str, str]) -> str:
    """'' when the app's id ``got`` may stand for the recorded ``want``; else why not."""
    mine = bound.get(want, binding.get(want))
    if mine is not None:
        return "" if mine == got else f"recorded {_shown(want)}, which this app calls {_shown(mine)}"
    other = taken.get(got)
    if other is None:
        other = next((old for old, new in binding.items() if new == got), None)
    if other is not None:
        return f"recorded {_shown(want)}, but this app's {_shown(got)} stands for {_shown(other)}"
    binding[want] = got
    return ""


def _cause(params: dict[str, Any], anchors: list[_Anchor]) -> _Anchor | None:
    """The latest anchor sharing the event's most specific id."""
    for key in _ID_KEYS:
        for value in _values(params, key):
            for anchor in reversed(anchors):
                if value in anchor.ids:
                    return anchor
    return None


def _values(value: Any, key: str) -> list[str]:
    """Every non-empty string under ``key`` in ``value``, the top level's first."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            v = item.get(key)
            if isinstance(v, str) and v:
                found.append(v)
            stack.extend(x for x in item.values() if isinstance(x, (dict, list)))
        elif isinstance(item, list):
            stack.extend(x for x in item if isinstance(x, (dict, list)))
    return found


def _ids(value: Any) -> set[str]:
    return {v for key in _ID_KEYS for v in _values(value, key)}


def _same_call(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("call_id") is not None and a.get("call_id") == b.get("call_id")


def _key(value: Any) -> Any:
    """A frame id usable as a dict key (ids are strings or numbers; anything else is keyed by its JSON)."""
    return value if isinstance(value, (str, int, float)) or value is None else orjson.dumps(value)


def _shown(value: Any) -> str:
    """A value in a message: JSON, shortened."""
    try:
        text = orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        text = type(value).__name__
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
