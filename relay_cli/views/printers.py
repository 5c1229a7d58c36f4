"""Turning events into output bytes: the pretty views and the JSON formats, written once for every command.

Pretty output is built from ANSI styles prepared once per run, not through rich's ``Console.print``:
a replay prints hundreds of thousands of lines and rich manages about fifteen thousand a second.
Text that came over the wire is escaped before it reaches a terminal, and secrets never leave here.
On a terminal each pretty line is also cut to the terminal's width (see :func:`fit`).
"""

from __future__ import annotations

import functools
import re
import shutil
import time
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from math import trunc
from typing import Any, Generic, TypeVar

import orjson

from relay_cli import protocol
from relay_cli.event import RelayEvent, parse_event

__all__ = [
    "Format",
    "Printer",
    "Style",
    "cells",
    "escape",
    "event_json",
    "fit",
    "headline",
    "local_iso",
    "make_printer",
    "pretty_block",
    "terminal_json",
    "terminal_width",
]


class Format(StrEnum):
    """Output formats; ``pretty`` on a terminal, ``json`` when piped."""

    pretty = "pretty"
    json = "json"
    frame = "frame"
    typed = "typed"
    none = "none"


def _ranges(*spans: tuple[int, int]) -> tuple[int, ...]:
    return tuple(c for first, last in spans for c in range(first, last + 1))


_C1 = _ranges((0x80, 0x9F))
_INVISIBLE = _ranges(
    # Every format character (Unicode category Cf: zero-width spaces and joiners, soft hyphen, bidi marks,
    # overrides and isolates, invisible operators, BOM, tag characters...) and the line and paragraph
    # separators (Zl, Zp): each is invisible or moves text around, so a payload could hide or forge text.
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x2028, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE007F),
)  # fmt: skip
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *_C1)}
_ESCAPES.update({c: f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}" for c in _INVISIBLE})
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def escape(text: str) -> str:
    """Make untrusted text safe for a terminal: control, format and bidi characters become escapes."""
    return text if text.isprintable() else text.translate(_ESCAPE_TABLE)


def _json_escape(c: int) -> str:
    if c < 0x10000:
        return f"\\u{c:04x}"
    c -= 0x10000
    return f"\\u{0xD800 + (c >> 10):04x}\\u{0xDC00 + (c & 0x3FF):04x}"


_JSON_ESCAPE_TABLE = str.maketrans({c: _json_escape(c) for c in (0x7F, *_C1, *_INVISIBLE)})


def terminal_json(data: bytes) -> bytes:
    """JSON text safe for a terminal, meaning the same JSON: DEL, C1 controls and the characters
    :func:`escape` hides become ``\\uXXXX`` escapes (orjson writes them raw, and the C0 controls it
    escapes already). Bytes that are all ASCII but DEL, nearly every line, pass untouched."""
    if data.isascii() and b"\x7f" not in data:
        return data
    return data.decode("utf-8", "surrogateescape").translate(_JSON_ESCAPE_TABLE).encode("utf-8", "surrogateescape")


def terminal_width(tty: bool) -> int | None:
    """The width to fit pretty lines to: the terminal's columns when stdout is one, else None (unlimited)."""
    return shutil.get_terminal_size().columns if tty else None


# Characters outside these ranges may take 0 or 2 cells, so only text holding one is measured character
# by character: everything relay writes itself (``→``, ``…``, ``·``) and Latin, Greek and Cyrillic text
# are one cell a character.
_MAYBE_NOT_ONE_CELL = re.compile("[^\x00-\u02ff\u0370-\u0482\u048a-\u052f\u2010-\u2027\u2030-\u205e\u2190-\u21ff]")
_DIGIT = re.compile("[0-9]")


@functools.lru_cache(maxsize=4096)
def _char_cells(char: str) -> int:
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return 0 if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf") else 1


def cells(text: str) -> int:
    """How many terminal cells ``text`` takes: wide characters take two, combining marks none."""
    if _MAYBE_NOT_ONE_CELL.search(text) is None:
        return len(text)
    return sum(map(_char_cells, text))


def _overflow(text: str, room: int) -> int | None:
    """None when ``text`` fits in ``room`` cells; else where to cut it so that it and a ``…`` fit.

    Text with no character that could take other than one cell, nearly all, is not measured at all;
    the rest is measured only as far as the room reaches.
    """
    if _MAYBE_NOT_ONE_CELL.search(text) is None:
        return None if len(text) <= room else max(room - 1, 0)
    used = 0
    cut = None
    for i, char in enumerate(text):
        used += _char_cells(char)
        if cut is None and used >= room:
            cut = i
        if used > room:
            return cut
    return None


_LONG_WORD = 20


def fit(text: str, room: int) -> str:
    """``text`` in at most ``room`` cells, cut with ``…`` when it is longer.

    The cut falls between words, so a phone number, an id, a time or a state is shown whole or not at
    all; only a word longer than 20 characters that is not a number or id (a URL, quoted JSON, a run
    of text without spaces) is cut inside, as its start says more than a bare ``…``.
    """
    if len(text) * 2 <= room:
        return text
    cut = _overflow(text, room)
    if cut is None:
        return text
    if room < 1:
        return ""
    if cut and text[cut - 1] != " ":
        start = text.rfind(" ", 0, cut) + 1
        end = text.find(" ", cut)
        word = text[start : end if end >= 0 else len(text)]
        if len(word) <= _LONG_WORD or (_DIGIT.search(word) and '"' not in word and "://" not in word):
            cut = start
    return text[:cut] + "…"


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


_ALERT = "1;31"
_FAMILY_COLORS = (
    ("calling.error", _ALERT),
    ("calling.conference", "94"),
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
    """The first eight characters of an id, escaped: escaping the rest of it is moot."""
    if call_id.__class__ is str:
        short = call_id[:8]
        return short if short.isprintable() else short.translate(_ESCAPE_TABLE)[:8]
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


_NOTHING: tuple[str, ...] = ()
_FAILED = ("error", "failed")
"""Tuples, not sets: a value from the wire may be unhashable (a dict), and a tuple compares instead."""
_STATEFUL_ACTIONS = ("play", "record", "tap", "stream", "send_digits", "refer", "pay", "echo", "transcribe", "hold")
_FAILED_STATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "calling.call.state": ("end_reason", ("error",)),
    "calling.call.connect": ("connect_state", _FAILED),
    "calling.call.dial": ("dial_state", _FAILED),
    "messaging.state": ("message_state", ("undelivered", "failed")),
    **{f"calling.call.{action}": ("state", _FAILED) for action in _STATEFUL_ACTIONS},
}
"""Events that report a failure in one key of their params, and its failure values: tested inline, per event."""
_FAILURES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "calling.call.collect": lambda p: _get(p, "result", "type") == "error" or p.get("state") in _FAILED,
    "calling.call.detect": lambda p: _get(p, "detect", "params", "event") in _FAILED,
    "calling.call.fax": lambda p: _get(p, "fax", "type") == "error" or _get(p, "fax", "params", "success") is False,
    "calling.error": lambda p: True,
}
"""The other events that can report a failure, with their tests. Failures are highlighted when colour is on."""

_SHOWN_TYPES = {"signalwire.authorization.state": "signalwire.auth.state"}
"""Abbreviations of types longer than the type column, so the columns after it stay aligned."""

_TYPE_WIDTH = 24
_PASSED = " · passed"


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
_CLOCK_CELLS = 13
_CALL_CELLS = 9
_SGR = re.compile("\x1b\\[[0-9;]*m")

V = TypeVar("V")


class _Cache(Generic[V]):
    """A dict that forgets everything when its keys and values pass a budget in characters.

    Keys come from the wire, so a count of entries alone bounds nothing: 3,000 call ids of 200 KB each
    are 600 MB. Each entry also counts a fixed overhead, so many small ones are bounded too. Lookups go
    to ``get``, the plain dict's own method (a dict subclass's costs a third more, on the hot path).
    """

    def __init__(self, budget: int) -> None:
        self.data: dict[str, V] = {}
        self.get = self.data.get
        self.budget = budget
        self.used = 0

    def add(self, key: str, value: V, size: int) -> None:
        cost = len(key) + size + 64
        if self.used + cost > self.budget:
            self.data.clear()
            self.used = 0
        self.data[key] = value
        self.used += cost


_Kind = tuple[
    bytes,
    Callable[[dict[str, Any]], str],
    str | None,
    tuple[str, ...],
    Callable[[dict[str, Any]], bool] | None,
    int,
    int,
]
"""What a line of one event type needs: the type cell, the headline maker, the failure test (a key of
params and its failure values, or a function; None when colour is off), the type cell's width in cells,
and how many characters at the end of the headline fitting must keep (`` · passed``). A plain tuple:
CPython unpacks only an exact tuple at full speed."""


class _PrettyLine:
    """One line per event for ``tail`` and ``replay``; ``verbose`` adds the typed fields under it.

    A line is four cells: clock, event type, call, headline. The first three repeat, so they are
    formatted once, cached as finished bytes (colour, reset and trailing space included), and a line
    is one ``bytes.join``. Only the headline is encoded per event: a ``→`` in one str would make the
    whole line two bytes a character, and encoding that back to UTF-8 goes character by character.

    With a ``width`` (a terminal's), the headline and the typed fields are cut to fit it; the clock,
    type and call cells never are. Failures are highlighted when colour is on. With ``passing``
    (``relay tail`` hands every offered call back to routing), an inbound call's line says so.

    Outbound calls are named before their first dial event carries the id, so tags seen on
    ``calling.call.state`` events map later tag-only dial events to their call. Messages show their
    message id in the call column, so the events of one message share a colour too.
    """

    def __init__(self, style: Style, verbose: bool, width: int | None = None, passing: bool = False) -> None:
        self.style = style
        self.verbose = verbose
        self.width = width
        self.passing = passing
        self._dim = style.dim
        self._reset = style.reset
        self._alert = style.code(_ALERT).encode()
        self._reset_bytes = self._reset.encode()
        self._millis = tuple(f"{ms}{self._reset} ".encode() for ms in _MILLIS)
        self._no_time = (b"", f"{self._dim}--:--:--.---{self._reset} ".encode())
        self._minute = -1
        self._start = self._end = 0.0
        self._clock = b""
        self._second = b""
        self._kinds: _Cache[_Kind] = _Cache(1 << 20)
        self._calls: _Cache[bytes] = _Cache(2 << 20)
        self._call_codes = {sgr: style.code(sgr) for sgr in _CALL_COLORS}
        self._tags: _Cache[str] = _Cache(2 << 20)

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

    def _kind(self, event_type: str) -> _Kind:
        """How to show an event type, worked out once per type."""
        kind = self._kinds.get(event_type)
        if kind is not None:
            return kind
        shown = _SHOWN_TYPES.get(event_type) or escape(event_type) or "-"
        cut = _overflow(shown, _TYPE_WIDTH) if self.width is not None else None
        if cut is not None:
            shown = shown[:cut] + "…"
        pad = " " * max(_TYPE_WIDTH - cells(shown), 0)
        cell = f"{self.style.code(family_sgr(event_type))}{shown}{pad}{self._reset} ".encode()
        make = _HEADLINES.get(event_type) or functools.partial(headline, event_type)
        keep = 0
        if self.passing and event_type == "calling.call.receive":
            make, keep = _with_suffix(make, _PASSED), len(_PASSED)
        key, values = _FAILED_STATES.get(event_type, (None, _NOTHING)) if self.style.color else (None, _NOTHING)
        test = _FAILURES.get(event_type) if self.style.color else None
        kind = (cell, make, key, values, test, cells(shown) + len(pad) + 1, keep)
        self._kinds.add(event_type, kind, len(cell))
        return kind

    def _call(self, params: dict[str, Any]) -> bytes:
        """The call cell: the event's call id (see :meth:`_call_id`), coloured and cut to eight characters."""
        call_id = params.get("call_id")
        if call_id.__class__ is not str or not call_id:
            call_id = self._call_id(params)
        elif "tag" in params:
            tag = params["tag"]
            if tag.__class__ is str and tag and self._tags.get(tag) != call_id:
                self._tags.add(tag, call_id, len(call_id))
        cell = self._calls.get(call_id)
        if cell is None:
            if call_id:
                cell = f"{self._call_codes[call_sgr(call_id)]}{_short(call_id):<8}{self._reset} ".encode()
            else:
                cell = b" " * _CALL_CELLS
            self._calls.add(call_id, cell, len(cell))
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
        cell, make, failed_key, failed_values, failed, kind_cells, keep = self._kinds.get(event_type) or self._kind(
            event_type
        )
        what = make(params)
        second, millis = self._time(ts)
        call = self._call(params)
        if self.width is not None:
            call_cells = _CALL_CELLS if call.isascii() else cells(_SGR.sub("", call.decode()))
            what = self._fit(what, self.width - _CLOCK_CELLS - kind_cells - call_cells, keep)
        if (failed_key is not None and params.get(failed_key) in failed_values) or (
            failed is not None and failed(params)
        ):
            line = b"".join((second, millis, cell, call, self._alert, what.encode(), self._reset_bytes, b"\n"))
        else:
            line = b"".join((second, millis, cell, call, what.encode(), b"\n"))
        return line + self._fields(payload).encode() if self.verbose else line

    @staticmethod
    def _fit(what: str, room: int, keep: int) -> str:
        if not keep:
            return fit(what, room)
        return fit(what[:-keep], room - keep) + what[-keep:]

    def _fields(self, payload: dict[str, Any]) -> str:
        try:
            event = parse_event(payload)
        except ValueError:
            return ""
        clean = event_json(event)
        dim, reset, width = self._dim, self._reset, self.width
        lines = []
        for name in event.typed_fields:
            value = _text(clean[name])
            if width is not None:
                value = fit(value, width - 5 - len(name))
            lines.append(f"    {dim}{name}{reset} {value}\n")
        return "".join(lines)


def _with_suffix(make: Callable[[dict[str, Any]], str], suffix: str) -> Callable[[dict[str, Any]], str]:
    return lambda p: make(p) + suffix


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


def make_printer(
    fmt: Format,
    style: Style,
    verbose: bool = False,
    *,
    width: int | None = None,
    terminal: bool = False,
    passing: bool = False,
) -> Printer | None:
    """The printer for a format (None for ``none``); each takes the payload and, when known, its bytes and id.

    ``width`` fits pretty lines to a terminal (None: unlimited, when piped); ``terminal`` says stdout is
    one, so the JSON formats escape what :func:`terminal_json` does; ``passing`` marks inbound calls as
    passed back to routing. Without them the output is what a pipe gets, byte for byte.
    """
    if fmt is Format.none:
        return None
    if fmt is Format.pretty:
        # a bound method is called without the instance-call slot
        return _PrettyLine(style, verbose, width, passing).__call__
    printer = {Format.json: _json_printer, Format.frame: _frame_printer, Format.typed: _typed_printer}[fmt]
    if not terminal:
        return printer

    def escaped(payload: dict[str, Any], raw: bytes | None, frame_id: Any = None) -> bytes:
        return terminal_json(printer(payload, raw, frame_id))

    return escaped
