"""Frames both ways, one line each: what ``relay serve`` (and later ``relay proxy``) shows of a conversation.

A RELAY conversation is requests, their results, and events with their ACKs. Reading it means pairing each
result with the request it answers, so a result line carries the request's method and the milliseconds between
the two; events are shown exactly as ``relay tail`` shows them (the same printer, so one copy of each phrase).

Pretty lines are ``clock #conn mark name call detail``: the mark is ``→`` for a frame from the app to RELAY and
``←`` for one from RELAY to the app (``->`` and ``<-`` where the terminal cannot show those), and the
connection number counts connections in order of appearance. ACKs, pings and pongs would be every other line of
a busy session, so they are left out unless ``verbose``; an ACK that is an error is always shown. Failures (a
JSON-RPC error, a result code that is not 2xx, a frame that is not JSON-RPC) are highlighted when colour is on.

The ``json`` form is one record per frame, every frame, ACKs and pongs included:
``{"dir": "app>relay"|"relay>app", "t": <epoch seconds>, "conn": N, "frame": <the frame>}``; a frame that is
not JSON-RPC is ``"frame": null`` with its text in ``"raw"``. Secrets are redacted in both forms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from relay_cli import protocol
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, FrameRecord, Kind
from relay_cli.views.conversation import Conversation, Exchange
from relay_cli.views.printers import Format, fit, make_printer
from relay_cli.views.text import ALERT, Style, call_sgr, escape, excerpt, family_sgr, join, s, short, terminal_json

__all__ = ["ARROWS", "ASCII_ARROWS", "FrameLines", "FrameRecords", "FrameView", "millis"]

ARROWS: Final = {APP_TO_RELAY: "→", RELAY_TO_APP: "←"}
ASCII_ARROWS: Final = {APP_TO_RELAY: "->", RELAY_TO_APP: "<-"}
"""The direction marks: the app on the left, RELAY on the right."""

_CONNECTIONS: Final = 10_000
"""Connection ids remembered with their numbers; a forgotten one that speaks again gets a new number."""
_NAME_WIDTH: Final = 24
_PREFIX_CELLS: Final = 13 + 4 + 2
"""Clock, connection (``#1`` padded to 3 and a space), mark and space: what the event printer is not told of."""
_QUIET: Final = (Kind.PING, Kind.EVENT)
"""Requests whose answers (pongs, empty or not; ACKs) are shown only when verbose; pings too."""
_CELLS: Final = 1024
"""Name and call cells kept ready-made; past it the table starts again (names come from the wire)."""
_CACHED: Final = 64
"""Only names and ids this short are kept: a name is as long as the peer made it."""
_UNDECODED: Final = object()
_EVENT: Final = Kind.EVENT
_RESULT: Final = Kind.RESULT
_ERROR: Final = Kind.ERROR
_PING: Final = Kind.PING
_CONNECT: Final = Kind.CONNECT
"""Kinds as module constants: an enum member looked up on its class costs 70 ns, on every frame."""


class FrameRecords:
    """The ``json`` form: ``{"dir", "t", "conn", "frame"}`` per frame, secrets redacted, one line each.

    A frame that is JSON-RPC, on one line and with no key that could hold a secret is spliced in as it crossed the
    wire; otherwise its decoded value (``frame``, when the caller has it, so nothing is decoded twice) is
    redacted and re-encoded. A frame that is not JSON-RPC is ``"frame": null`` with its text in ``"raw"``.
    """

    __slots__ = ("_heads", "_tails", "terminal")

    def __init__(self, terminal: bool = False) -> None:
        self.terminal = terminal
        self._heads: dict[str, bytes] = {}
        self._tails: dict[int, bytes] = {}

    def __call__(
        self, direction: str, at: float, number: int, kind: Kind | None, raw: bytes, frame: Any = _UNDECODED
    ) -> bytes:
        head = self._heads.get(direction)
        if head is None:
            if len(self._heads) >= _CELLS:
                self._heads.clear()
            head = self._heads[direction] = protocol.frame_record_head(direction)
        tail = self._tails.get(number)
        if tail is None:
            if len(self._tails) >= _CELLS:
                self._tails.clear()
            tail = self._tails[number] = protocol.frame_record_tail(number)
        body = None
        if kind is not None:
            if b"\n" not in raw and not protocol.may_hold_secret(raw):
                body = raw  # as it crossed the wire: valid JSON, on one line, nothing to redact
            else:
                try:
                    body = orjson.dumps(protocol.redact(orjson.loads(raw) if frame is _UNDECODED else frame))
                except (orjson.JSONDecodeError, TypeError):
                    body = None
        if body is not None:
            line = b"".join((head, orjson.dumps(at), tail, b',"frame":', body, b"}\n"))
        else:
            line = b"".join((head, orjson.dumps(at), tail, b',"frame":null,"raw":', orjson.dumps(_text(raw)), b"}\n"))
        return terminal_json(line) if self.terminal else line


def _text(raw: bytes) -> str:
    """A frame that is not JSON-RPC as redacted text: a JSON one that may hold a secret redacted by walking its
    value (a secret key's value may be an object, which no search of the text would redact)."""
    if protocol.may_hold_secret(raw) and len(raw) <= protocol.MAX_FRAME and not protocol.too_many_containers(raw):
        try:
            return orjson.dumps(protocol.redact(orjson.loads(raw))).decode()
        except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
            pass
    return protocol.redact_text(raw.decode("utf-8", "replace"))


class FrameLines:
    """The pretty line of one :class:`~relay_cli.views.conversation.Exchange`: ``clock #conn mark name call detail``.

    ``verbose`` shows ACKs, pings and pongs too; ``width`` fits lines to a terminal's; ``ascii`` uses ``->``/``<-``
    for the marks. ``reserve`` keeps that many cells free at the end of an event's line, for what a caller adds
    there (the proxy's ACK latency); ``problems`` says why a frame that is not JSON-RPC is flagged.
    """

    def __init__(
        self,
        style: Style,
        *,
        verbose: bool = False,
        width: int | None = None,
        ascii: bool = False,
        reserve: int = 0,
        problems: bool = False,
    ) -> None:
        self.style = style
        self.verbose = verbose
        self.width = width
        self.problems = problems
        self._marks = ASCII_ARROWS if ascii else ARROWS
        self._alert = style.code(ALERT)
        self._reset = style.reset
        self._dim = style.dim
        room = None if width is None else max(width - _PREFIX_CELLS - reserve, 20)
        printer = make_printer(Format.pretty, style, width=room)
        assert printer is not None
        self._event_line = printer
        self._second = math.nan
        self._second_text = ""
        self._names: dict[tuple[str, str | None], str] = {}
        self._calls: dict[str, str] = {}

    def __call__(self, ex: Exchange) -> bytes:
        """The line, or ``b""`` for a frame left out (an ACK, ping or pong when not verbose)."""
        kind = ex.kind
        prefix = f"{self.clock(ex.time)} #{ex.connection:<2} {self._marks.get(ex.direction, '?')} "
        if kind is None:
            return self._flagged(prefix, ex)
        if kind is _RESULT or kind is _ERROR:
            return self._reply(prefix, ex)
        params = ex.frame.get("params")
        if params.__class__ is not dict:
            params = {}
        if kind is _EVENT:
            event = self._event_line(params, None, None)
            _, _, rest = event.partition(b" ")  # the event's own clock: the frame's is shown instead
            return prefix.encode() + rest
        method = ex.method
        if kind is _PING and not self.verbose:
            return b""
        detail = _request_detail(method, params)
        return self._finish(prefix, self._name(method), self._call(ex.call), self._fitted(detail, ""))

    def _flagged(self, prefix: str, ex: Exchange) -> bytes:
        name = self._name("(not JSON-RPC)", ALERT)
        raw = ex.raw
        if not self.problems:
            what = escape(protocol.excerpt(raw, 120))
        elif ex.problem == "binary frame":
            what = f"binary frame ({len(raw)} bytes)"
        else:
            what = join(f"{ex.problem}:" if ex.problem else "", escape(protocol.excerpt(raw, 120)))
        return self._finish(prefix, name, "", self._fitted(what, ""), alert=True)

    def _reply(self, prefix: str, ex: Exchange) -> bytes:
        asked = ex.asked
        took = f" · {millis(ex.took)}" if ex.took is not None else ""
        method = ex.method
        call = ex.call
        frame = ex.frame
        if ex.kind is _ERROR:
            err = frame.get("error")
            err = err if isinstance(err, dict) else {}
            detail = join("error", s(err.get("code")), s(err.get("message")))
            return self._finish(
                prefix, self._name(method or "error"), self._call(call), self._fitted(detail, took), alert=True
            )
        value = frame.get("result")
        value = value if isinstance(value, dict) else {}
        pong = asked is not None and asked.kind is _PING  # RELAY's pong carries a timestamp: still a pong
        if pong or (not value and (asked is None or asked.kind in _QUIET)):
            if not self.verbose:
                return b""
            detail = "pong" if pong else "ack"
            return self._finish(
                prefix, self._name(method or "result", "2"), self._call(call), self._fitted(detail, took)
            )
        detail, ident, failed = _result_detail(value)
        return self._finish(
            prefix, self._name(method or "result"), self._call(call or ident), self._fitted(detail, took), alert=failed
        )

    def _finish(self, prefix: str, name: str, call: str, detail: str, *, alert: bool = False) -> bytes:
        if alert and self.style.color:
            detail = f"{self._alert}{detail}{self._reset}"
        return f"{prefix}{name}{call}{detail}".rstrip(" ").encode() + b"\n"

    def clock(self, at: float) -> str:
        """``HH:MM:SS.mmm`` in local time, dimmed; the second's text is worked out once per second."""
        try:
            second = math.floor(at)
            if second != self._second:
                self._second_text = time.strftime("%H:%M:%S", time.localtime(at))
                self._second = second
        except (OverflowError, OSError, ValueError):
            return f"{self._dim}--:--:--.---{self._reset}"
        return f"{self._dim}{self._second_text}.{int(at * 1000) % 1000:03d}{self._reset}"

    def _name(self, name: str, sgr: str | None = None) -> str:
        key = (name, sgr)
        cell = self._names.get(key)
        if cell is not None:
            return cell
        shown = escape(name) or "-"
        if len(shown) > _NAME_WIDTH and self.width is not None:
            shown = shown[: _NAME_WIDTH - 1] + "…"
        colour = self.style.code(sgr or family_sgr(name))
        cell = f"{colour}{shown:<{_NAME_WIDTH}}{self._reset} "
        if len(name) <= _CACHED:
            if len(self._names) >= _CELLS:
                self._names.clear()
            self._names[key] = cell
        return cell

    def _call(self, call: str) -> str:
        if not call:
            return " " * 9
        cell = self._calls.get(call)
        if cell is None:
            cell = f"{self.style.code(call_sgr(call))}{short(call):<8}{self._reset} "
            if len(call) <= _CACHED:
                if len(self._calls) >= _CELLS:
                    self._calls.clear()
                self._calls[call] = cell
        return cell

    def _fitted(self, detail: str, suffix: str) -> str:
        if self.width is None:
            return detail + suffix
        room = self.width - _PREFIX_CELLS - _NAME_WIDTH - 1 - 9 - len(suffix)
        return fit(detail, max(room, 1)) + suffix


class FrameView:
    """Turns one frame (direction, time, connection id, kind, bytes) into its output line, or ``b""``.

    ``style`` colours pretty lines; ``json`` gives frame records instead; ``verbose`` shows ACKs, pings and
    pongs too; ``width`` fits pretty lines to a terminal's; ``terminal`` escapes JSON as
    :func:`~relay_cli.views.text.terminal_json` does; ``ascii`` uses ``->``/``<-`` for the marks.
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
    ) -> None:
        self.style = style
        self.json = json
        self.verbose = verbose
        self.width = width
        self.terminal = terminal
        self.connection_number = protocol.ConnectionNumbers(_CONNECTIONS)
        """1, 2, 3... in order of first appearance."""
        self.conversation = Conversation()
        """The pairing of results with requests (pretty lines only: JSON records need no pairs)."""
        self._see = self.conversation.see
        self._lines = FrameLines(style, verbose=verbose, width=width, ascii=ascii).__call__
        self._records = FrameRecords(terminal).__call__

    def __call__(self, direction: str, at: float, connection: str, kind: Kind | None, raw: bytes) -> bytes:
        """``kind`` is what the frame was classified as (None: not JSON-RPC); only JSON records rely on it."""
        number = self.connection_number(connection)
        if self.json:
            return self._records(direction, at, number, kind, raw)
        return self._lines(self._see(direction, at, number, raw))

    def record(self, rec: FrameRecord) -> bytes:
        """The same for a :class:`~relay_cli.protocol.FrameRecord` (a journal's or a proxy's)."""
        return self(rec.direction, rec.time, rec.connection, rec.kind, rec.raw)


def millis(seconds: float) -> str:
    """A latency as ``0.4 ms``, ``12 ms`` or ``12.5 s``."""
    ms = max(seconds, 0.0) * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 10_000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


# -- what a request says -----------------------------------------------------------------------------------


def _media(items: Any) -> str:
    """``tts "Welcome…"``, ``audio https://…``, ``silence 2s``, ``ringtone us``, for each item of a play list."""
    if not isinstance(items, list):
        return ""
    parts = []
    for item in items[:4]:
        if not isinstance(item, dict):
            continue
        kind = s(item.get("type"))
        p = item.get("params")
        p = p if isinstance(p, dict) else {}
        if "text" in p:
            parts.append(join(kind, excerpt(p["text"], 30)))
        elif "url" in p:
            parts.append(join(kind, protocol.display_url(s(p["url"]))))
        elif "duration" in p:
            parts.append(f"{kind} {s(p['duration'])}s")
        elif "name" in p:
            parts.append(join(kind, s(p["name"])))
        else:
            parts.append(kind)
    if len(items) > 4:
        parts.append(f"+{len(items) - 4}")
    return ", ".join(parts)


def _collect(p: dict[str, Any]) -> str:
    """``digits max 4 #``, ``speech``: what a collect waits for."""
    parts = []
    digits = p.get("digits")
    if isinstance(digits, dict):
        parts.append(join("digits", f"max {s(digits['max'])}" if "max" in digits else "", s(digits.get("terminators"))))
    if isinstance(p.get("speech"), dict):
        parts.append("speech")
    return " + ".join(parts)


def _devices(devices: Any) -> str:
    """The numbers or addresses dialled: ``to +15551230000`` (serial ``,``; parallel ``|``)."""
    if not isinstance(devices, list):
        return ""
    serial = []
    for group in devices[:8]:
        legs = group if isinstance(group, list) else [group]
        parallel = []
        for device in legs[:8]:
            p = device.get("params") if isinstance(device, dict) else None
            if isinstance(p, dict):
                to = p.get("to_number") or p.get("to") or p.get("uri")
                if to:
                    parallel.append(s(to))
        if parallel:
            serial.append(" | ".join(parallel))
    return f"to {', '.join(serial)}" if serial else ""


_RENDER: Final[tuple[tuple[str, Callable[[Any, dict[str, Any]], str]], ...]] = (
    ("control_id", lambda v, p: f"control {short(v)}"),
    ("tag", lambda v, p: f"tag {short(v)}"),
    ("play", lambda v, p: _media(v)),
    ("collect", lambda v, p: _collect(v) if isinstance(v, dict) else ""),
    ("digits", lambda v, p: f"digits {s(v)}" if isinstance(v, str) else _collect(p)),
    ("speech", lambda v, p: "" if "digits" in p else _collect(p)),
    ("detect", lambda v, p: f"detect {s(v.get('type'))}" if isinstance(v, dict) else ""),
    ("devices", lambda v, p: _devices(v)),
    ("to_number", lambda v, p: f"{s(p.get('from_number')) or '?'} → {s(v)}"),
    ("body", lambda v, p: excerpt(v, 30)),
    ("media", lambda v, p: f"{len(v)} media" if isinstance(v, list) and v else ""),
    ("reason", lambda v, p: f"reason {s(v)}"),
    ("contexts", lambda v, p: f"contexts {', '.join(map(s, v[:8]))}" if isinstance(v, list) else ""),
    ("context", lambda v, p: f"on {s(v)}"),
    ("url", lambda v, p: protocol.display_url(s(v))),
    ("volume", lambda v, p: f"volume {s(v)}"),
    ("dest", lambda v, p: f"to {s(v)}"),
    ("name", lambda v, p: s(v)),
    ("queue_name", lambda v, p: f"queue {s(v)}"),
    ("document", lambda v, p: protocol.display_url(s(v))),
)
"""The params worth a line, in the order shown, each with how to say it; the rest (node ids, versions,
credentials) are left out. Keyed by param name, not method: a key means the same in every verb."""


def _request_detail(method: str, params: dict[str, Any]) -> str:
    if method == Kind.CONNECT.value:
        return join(
            f"contexts {', '.join(map(s, params['contexts'][:8]))}" if isinstance(params.get("contexts"), list) else "",
            "resuming" if params.get("protocol") else "",
        )
    parts = []
    for key, render in _RENDER:
        if key in params:
            value = params[key]
            if value is None or value == "":
                continue
            text = render(value, params)
            if text:
                parts.append(text)
    return " ".join(parts)


def _result_detail(value: dict[str, Any]) -> tuple[str, str, bool]:
    """What a result says, the id it names (a message's) for the call column, and whether it is a failure."""
    if "protocol" in value:  # the signalwire.connect result
        session = value.get("sessionid")
        restored = "restored" if value.get("session_restored") else ""
        return join(f"session {short(session)}" if session else "connected", restored), "", False
    value = protocol.call_control_result(value)
    ident = value.get("message_id")
    ident = ident if ident.__class__ is str else ""
    if "code" in value:
        return join(s(value["code"]), s(value.get("message"))), ident, not protocol.is_success(value)
    return (excerpt(orjson.dumps(protocol.redact(value)).decode(), 60) if value else "ok"), ident, False
