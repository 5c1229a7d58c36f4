"""Turning events into output bytes: the pretty views and the JSON formats, written once for every command.

Pretty output is built from ANSI styles prepared once per run, not through rich's ``Console.print``:
a replay prints hundreds of thousands of lines and rich manages about fifteen thousand a second.
Text that came over the wire is escaped before it reaches a terminal, and secrets never leave here.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from math import trunc
from typing import Any

import orjson

from relay_cli import protocol
from relay_cli.event import RelayEvent, parse_event

__all__ = [
    "Format",
    "Printer",
    "Style",
    "escape",
    "event_json",
    "headline",
    "local_iso",
    "make_printer",
    "pretty_block",
]


class Format(StrEnum):
    """Output formats; ``pretty`` on a terminal, ``json`` when piped."""

    pretty = "pretty"
    json = "json"
    frame = "frame"
    typed = "typed"
    none = "none"


_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)})
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def escape(text: str) -> str:
    """Make untrusted text safe for a terminal: control and bidi-override characters become escapes."""
    return text if text.isprintable() else text.translate(_ESCAPE_TABLE)


def _text(value: Any) -> str:
    """Any payload value as one escaped line: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return escape(value)
    try:
        return escape(orjson.dumps(value).decode())
    except TypeError:
        return escape(repr(value))


@dataclass(frozen=True)
class Style:
    """ANSI sequences prepared once; every one is empty when colour is off."""

    color: bool

    def code(self, sgr: str) -> str:
        return f"\x1b[{sgr}m" if self.color else ""

    @property
    def reset(self) -> str:
        return self.code("0")

    @property
    def dim(self) -> str:
        return self.code("2")

    @property
    def bold(self) -> str:
        return self.code("1")


_FAMILY_COLORS = (
    ("calling.error", "1;31"),
    ("calling.conference", "34"),
    ("calling.", "36"),
    ("messaging.", "35"),
    ("signalwire.", "2"),
    ("", "33"),
)
_CALL_COLORS = ("38;5;39", "38;5;42", "38;5;208", "38;5;170", "38;5;220", "38;5;81", "38;5;203", "38;5;149")


def family_sgr(event_type: str) -> str:
    return next(sgr for prefix, sgr in _FAMILY_COLORS if event_type.startswith(prefix))


def call_sgr(call_id: str) -> str:
    """The same colour for every event of one call, in every run."""
    return _CALL_COLORS[zlib.crc32(call_id.encode()) % len(_CALL_COLORS)]


def local_iso(ts: float) -> str:
    """Local ISO-8601 with milliseconds; ``-`` when the event carried no time."""
    if not ts:
        return "-"
    try:
        return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.3f}"


def event_json(event: RelayEvent, raw: bytes | None = None) -> dict[str, Any]:
    """The ``typed`` format: class, the four common fields, the typed fields, then params.

    Every value comes from the payload, so when its encoded bytes (``raw``) show no secret the
    redaction walk is skipped.
    """
    out: dict[str, Any] = {
        "class": type(event).__name__,
        "event_type": event.event_type,
        "call_id": event.call_id,
        "timestamp": event.timestamp,
    }
    for name in event.typed_fields:
        out[name] = getattr(event, name)
    out["params"] = event.params
    if raw is not None and not protocol.may_hold_secret(raw):
        return out
    clean: dict[str, Any] = protocol.redact(out)
    return clean


def pretty_block(event: RelayEvent, style: Style) -> str:
    """``relay parse``'s view: class and type, then every typed field in an aligned table."""
    rows: list[tuple[str, str]] = [
        ("call_id", _text(protocol.redact(event.call_id)) or "-"),
        ("time", local_iso(event.timestamp)),
    ]
    clean = event_json(event)
    typed = [(name, _text(clean[name]) if clean[name] != "" else '""') for name in event.typed_fields]
    payload = event.payload
    for key in ("event_channel", "context", "project_id", "space_id"):
        value = payload.get(key)
        if value in ("", None) or (key in event.typed_fields and clean[key] == value):
            continue
        rows.append((key if key not in event.typed_fields else f"{key} (top level)", _text(protocol.redact(value))))
    rows += typed
    width = max(len(name) for name, _ in rows)
    fam = style.code(family_sgr(event.event_type))
    kind = escape(event.event_type) or "-"
    head = f"{style.bold}{type(event).__name__}{style.reset}  {fam}{kind}{style.reset}"
    body = [f"  {style.dim}{name:<{width}}{style.reset}  {value}" for name, value in rows]
    return "\n".join([head, *body]) + "\n"


def _get(params: dict[str, Any], *path: str) -> Any:
    node: Any = params
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _obj(params: dict[str, Any], key: str) -> dict[str, Any]:
    value = params.get(key)
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str:
    """A payload value as escaped text; ``""`` for absent or empty values."""
    if value.__class__ is str:
        return value if value.isprintable() else value.translate(_ESCAPE_TABLE)
    if value is None:
        return ""
    return _text(value)


def _join(*parts: str) -> str:
    """The non-empty parts, space-separated; for the rarer event types (``filter`` and ``join`` cost
    several times the f-strings the frequent ones use to append their optional parts)."""
    return " ".join(filter(None, parts))


def _numbers(device: Any) -> str:
    params = device.get("params") if device.__class__ is dict else None
    if params.__class__ is not dict:
        return ""
    src = params.get("from_number") or params.get("from")
    dst = params.get("to_number") or params.get("to")
    return f"{_s(src) or '?'} → {_s(dst) or '?'}" if src or dst else ""


def _short(call_id: Any) -> str:
    """The first eight characters of an id, escaped: when those are printable, escaping the rest is moot."""
    if call_id.__class__ is str and call_id[:8].isprintable():
        return call_id[:8]
    return _s(call_id)[:8]


def _excerpt(body: Any, width: int = 40) -> str:
    text = _s(body)
    return f'"{text[:width]}…"' if len(text) > width else (f'"{text}"' if text else "")


# The headlines of the frequent event types append each optional part with an f-string (``if part:
# text = f"{text} {part}"``) rather than through _join: a replay makes one headline per event, and
# packing the parts, filtering them and joining them costs several times as much.


def _state_headline(p: dict[str, Any]) -> str:
    """``answered``, ``ended (hangup)``; a new or ringing call adds its numbers, a bridged leg its peer.

    The state comes first even when it is empty, so a line without one starts with a space.
    """
    text = state = _s(p.get("call_state"))
    reason = p.get("end_reason")
    if reason:
        text = f"{state} ({_s(reason)})"
    if state in {"created", "ringing"}:
        numbers = _numbers(p.get("device"))
        if numbers:
            text = f"{text} {numbers}"
    peer = p.get("peer")
    if peer.__class__ is dict and peer.get("call_id"):
        text = f"{text} peer of {_short(peer['call_id'])}"
    return text


def _receive_headline(p: dict[str, Any]) -> str:
    numbers = _numbers(p.get("device"))
    text = f"inbound call {numbers}" if numbers else "inbound call"
    context = p.get("context")
    return f"{text} on {_s(context)}" if context else text


def _collect_headline(p: dict[str, Any]) -> str:
    result = _obj(p, "result")
    rp = _obj(result, "params")
    kind = _s(result.get("type")) or _s(p.get("state"))
    text = f"collect {kind}" if kind else "collect"
    detail = _s(rp.get("digits")) or _excerpt(rp.get("text"))
    if detail:
        text = f"{text} {detail}"
    conf = rp.get("confidence")
    return f"{text} ({_s(conf)})" if conf is not None else text


def _record_headline(p: dict[str, Any]) -> str:
    rec = _obj(p, "record")
    state = _s(p.get("state"))
    text = f"record {state}" if state else "record"
    duration = rec.get("duration", p.get("duration"))
    if duration not in (None, ""):
        text = f"{text} {_s(duration)}s"
    url = _s(rec.get("url", p.get("url")))
    return f"{text} {url}" if url else text


def _connect_headline(p: dict[str, Any]) -> str:
    """``connect connected peer 8d19821f``; ``peer`` stays when the peer's id is missing."""
    state = _s(p.get("connect_state"))
    peer = p.get("peer")
    peer = _short(peer.get("call_id")) if isinstance(peer, dict) else ""
    text = f"connect {state} peer" if state else "connect peer"
    return f"{text} {peer}" if peer else text


def _detect_headline(p: dict[str, Any]) -> str:
    detect = _obj(p, "detect")
    return _join("detect", _s(detect.get("type")), _s(_get(detect, "params", "event")))


def _dial_headline(p: dict[str, Any]) -> str:
    """``dial answered``; the ``call`` object, which tag-only events lack, adds the winner and numbers."""
    state = _s(p.get("dial_state"))
    text = f"dial {state}" if state else "dial"
    call = p.get("call")
    if not isinstance(call, dict):
        return text
    if call.get("dial_winner") in (True, "true"):
        text = f"{text} winner {_short(call.get('call_id'))}"
    numbers = _numbers(call.get("device"))
    return f"{text} {numbers}" if numbers else text


def _fax_headline(p: dict[str, Any]) -> str:
    fax = _obj(p, "fax")
    fp = _obj(fax, "params")
    pages = fp.get("pages")
    return _join(
        "fax",
        _s(fax.get("type")),
        _s(fp.get("direction")),
        f"{_s(pages)} pages" if pages not in (None, "") else "",
        _s(fp.get("result_text")),
    )


def _message_headline(p: dict[str, Any]) -> str:
    src, dst = _s(p.get("from_number")), _s(p.get("to_number"))
    text = f"{src or '?'} → {dst or '?'}"
    state = _s(p.get("message_state"))
    if state:
        text = f"{text} {state}"
    reason = _s(p.get("reason"))
    if reason:
        text = f"{text} ({reason})"
    body = _excerpt(p.get("body"))
    return f"{text} {body}" if body else text


def _action(name: str, *keys: str) -> Callable[[dict[str, Any]], str]:
    """A headline of ``name`` and the values at ``keys`` that are present: ``play finished``."""

    def make(p: dict[str, Any]) -> str:
        text = name
        for key in keys:
            value = _s(p.get(key))
            if value:
                text = f"{text} {value}"
        return text

    return make


_HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "calling.call.state": _state_headline,
    "calling.call.receive": _receive_headline,
    "calling.call.play": _action("play", "state"),
    "calling.call.record": _record_headline,
    "calling.call.collect": _collect_headline,
    "calling.call.connect": _connect_headline,
    "calling.call.detect": _detect_headline,
    "calling.call.fax": _fax_headline,
    "calling.call.tap": _action("tap", "state"),
    "calling.call.stream": _action("stream", "state", "url"),
    "calling.call.send_digits": _action("send_digits", "state"),
    "calling.call.dial": _dial_headline,
    "calling.call.refer": lambda p: _join(
        "refer", _s(p.get("state")), _s(p.get("sip_refer_to")), _s(p.get("sip_notify_response_code"))
    ),
    "calling.call.denoise": lambda p: "denoise " + ("on" if p.get("denoised") in (True, "true") else "off"),
    "calling.call.pay": _action("pay", "state"),
    "calling.call.queue": lambda p: _join(
        "queue",
        _s(p.get("status")),
        _s(p.get("name")),
        f"position {_s(p.get('position'))}/{_s(p.get('size'))}" if p.get("position") is not None else "",
    ),
    "calling.call.echo": _action("echo", "state"),
    "calling.call.transcribe": _action("transcribe", "state", "url"),
    "calling.call.hold": _action("hold", "state"),
    "calling.conference": _action("conference", "name", "status"),
    "calling.error": lambda p: _join("error", _s(p.get("code")), _s(p.get("message"))),
    "messaging.receive": _message_headline,
    "messaging.state": _message_headline,
    "signalwire.authorization.state": lambda p: "session authorization updated",
}


def headline(event_type: str, params: dict[str, Any]) -> str:
    """What happened, in a few words, from the payload's params."""
    make = _HEADLINES.get(event_type)
    if make is None:
        return _excerpt(orjson.dumps(protocol.redact(params)).decode(), 80)
    return make(params)


Printer = Callable[[dict[str, Any], "bytes | None", Any], bytes]
"""Turns one event payload, its encoded bytes and its frame id (each None when unknown) into output bytes."""


_MILLIS = tuple(f"{ms:03d}" for ms in range(1000))
_SECONDS = tuple(f"{second:02d}.".encode() for second in range(60))


class _PrettyLine:
    """One line per event for ``tail`` and ``replay``; ``verbose`` adds the typed fields under it.

    A line is four cells: clock, event type, call, headline. The first three repeat, so they are
    formatted once, cached as finished bytes (colour, reset and trailing space included), and a line
    is one ``bytes.join``. Only the headline is encoded per event: a ``→`` in one str would make the
    whole line two bytes a character, and encoding that back to UTF-8 goes character by character.

    Outbound calls are named before their first dial event carries the id, so tags seen on
    ``calling.call.state`` events map later tag-only dial events to their call. Messages show their
    message id in the call column, so the events of one message share a colour too.
    """

    def __init__(self, style: Style, verbose: bool) -> None:
        self.style = style
        self.verbose = verbose
        self._dim = style.dim
        self._reset = style.reset
        self._millis = tuple(f"{ms}{self._reset} ".encode() for ms in _MILLIS)
        self._no_time = (b"", f"{self._dim}--:--:--.---{self._reset} ".encode())
        self._minute = -1
        self._start = self._end = 0.0
        self._clock = b""
        self._second = b""
        self._kinds: dict[str, tuple[bytes, Callable[[dict[str, Any]], str]]] = {}
        self._calls: dict[str, bytes] = {}
        self._call_codes = {sgr: style.code(sgr) for sgr in _CALL_COLORS}
        self._tags: dict[str, str] = {}

    def _time(self, ts: Any) -> tuple[bytes, bytes]:
        """The clock cell in two pieces, the second's text and the milliseconds' (with the reset and the
        space after), which the line's join puts together.

        Events come in time order, so most fall in the second the previous one did: that second's text
        is kept with its bounds, and only the milliseconds are looked up. ``trunc`` rather than ``int``:
        the same for a number, and in CPython 3.11 a third of the cost.
        """
        if ts.__class__ is not float and ts.__class__ is not int:
            return self._no_time
        if not self._start <= ts < self._end:
            if not 0 < ts < 32503680000:
                return self._no_time
            second = trunc(ts)
            minute, second_of_minute = divmod(second, 60)
            if minute != self._minute:
                self._minute = minute
                self._clock = (self._dim + time.strftime("%H:%M:", time.localtime(minute * 60))).encode()
            self._second = self._clock + _SECONDS[second_of_minute]
            self._start = float(second)
            self._end = self._start + 1.0
        return self._second, self._millis[trunc((ts - self._start) * 1000)]

    def _kind(self, event_type: str) -> tuple[bytes, Callable[[dict[str, Any]], str]]:
        """The type cell and the headline maker of an event type, looked up once per type."""
        kind = self._kinds.get(event_type)
        if kind is None:
            cell = f"{self.style.code(family_sgr(event_type))}{escape(event_type) or '-':<24}{self._reset} "
            kind = (cell.encode(), _HEADLINES.get(event_type) or functools.partial(headline, event_type))
            if len(self._kinds) < 4096:
                self._kinds[event_type] = kind
        return kind

    def _call(self, params: dict[str, Any]) -> bytes:
        """The call cell: the event's call id (see :meth:`_call_id`), coloured and cut to eight characters."""
        call_id = params.get("call_id")
        if call_id.__class__ is not str or not call_id:
            call_id = self._call_id(params)
        elif "tag" in params:
            tag = params["tag"]
            if tag.__class__ is str and tag:
                if len(self._tags) > 65536:
                    self._tags.clear()
                self._tags[tag] = call_id
        cell = self._calls.get(call_id)
        if cell is None:
            if call_id:
                cell = f"{self._call_codes[call_sgr(call_id)]}{_short(call_id):<8}{self._reset} ".encode()
            else:
                cell = b" " * 9
            if len(self._calls) > 65536:
                self._calls.clear()
            self._calls[call_id] = cell
        return cell

    def _call_id(self, params: dict[str, Any]) -> str:
        """The call of an event without a ``call_id`` of its own: its call's, its tag's, or its message's."""
        call = params.get("call")
        if call.__class__ is dict and call.get("call_id").__class__ is str:
            return call["call_id"]  # type: ignore[no-any-return]
        tag = params.get("tag")
        if tag.__class__ is str:
            return self._tags.get(tag, "")
        message_id = params.get("message_id")
        if message_id.__class__ is str:
            return message_id
        call_id = params.get("call_id")
        return "" if call_id is None else str(call_id)

    def __call__(self, payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
        params = payload.get("params")
        if params.__class__ is not dict:
            params = {}
        event_type = payload.get("event_type")
        if event_type.__class__ is not str:
            event_type = ""
        ts = payload.get("timestamp")
        if ts is None:
            ts = params.get("timestamp")
        cell, make = self._kinds.get(event_type) or self._kind(event_type)
        what = make(params)
        second, millis = self._time(ts)
        line = b"".join((second, millis, cell, self._call(params), what.encode(), b"\n"))
        return line + self._fields(payload).encode() if self.verbose else line

    def _fields(self, payload: dict[str, Any]) -> str:
        try:
            event = parse_event(payload)
        except ValueError:
            return ""
        clean = event_json(event)
        dim, reset = self._dim, self._reset
        return "".join(f"    {dim}{name}{reset} {_text(clean[name])}\n" for name in event.typed_fields)


def _json_printer(payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
    payload, raw = protocol.without_secrets(payload, raw)
    if raw is None:
        return orjson.dumps(payload) + b"\n"
    return raw if raw.endswith(b"\n") else raw + b"\n"


def _frame_printer(payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
    """The ``signalwire.event`` frame; its id when the event came off the wire (recordings keep none)."""
    payload, _ = protocol.without_secrets(payload, raw)
    frame: dict[str, Any] = {"jsonrpc": "2.0"}
    if frame_id is not None:
        frame["id"] = frame_id
    frame["method"] = "signalwire.event"
    frame["params"] = payload
    return orjson.dumps(frame) + b"\n"


def _typed_printer(payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
    return orjson.dumps(event_json(parse_event(payload), raw)) + b"\n"


def make_printer(fmt: Format, style: Style, verbose: bool = False) -> Printer | None:
    """The printer for a format (None for ``none``); each takes the payload and, when known, its bytes and id."""
    if fmt is Format.none:
        return None
    if fmt is Format.pretty:
        return _PrettyLine(style, verbose).__call__  # a bound method is called without the instance-call slot
    return {Format.json: _json_printer, Format.frame: _frame_printer, Format.typed: _typed_printer}[fmt]
