"""Turning events into output bytes: the pretty views and the JSON formats, written once for every command.

Pretty output is built from ANSI styles prepared once per run, not through rich's ``Console.print``:
a replay prints hundreds of thousands of lines and rich manages about fifteen thousand a second.
Text that came over the wire is escaped before it reaches a terminal (`views.text`), and secrets never leave here.
What each line says of its event is the phrase table's headline (`views.phrases`).
On a terminal each pretty line is also cut to the terminal's width (see :func:`fit`).
"""

from __future__ import annotations

import functools
import re
import shutil
import time
import unicodedata
from collections.abc import Callable
from enum import StrEnum
from math import inf, trunc
from typing import Any, Generic, TypeVar

import orjson

from relay_cli import protocol
from relay_cli.event import RelayEvent, event_time, parse_event
from relay_cli.lifecycles import ACTION_FAILED, ACTIONS, CALL, MESSAGE
from relay_cli.views.phrases import describer
from relay_cli.views.text import (
    ALERT,
    CALL_COLORS,
    Style,
    call_sgr,
    escape,
    family_sgr,
    get,
    local_iso,
    short,
    terminal_json,
    value_text,
)

# ``Style``, ``escape`` and ``terminal_json`` live in `views.text`; they are named here too for the process edge,
# which takes everything it prints with from this module.
__all__ = [
    "Format",
    "Printer",
    "Style",
    "cells",
    "escape",
    "event_json",
    "fit",
    "headline",
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


def terminal_width(tty: bool) -> int | None:
    """The width to fit pretty lines to: the terminal's columns when stdout is one, else None (unlimited)."""
    return shutil.get_terminal_size().columns if tty else None


# Characters outside these ranges may take 0 or 2 cells, so only text holding one is measured character
# by character: everything relay writes itself (``→``, ``…``, ``·``) and Latin, Greek and Cyrillic text
# are one cell a character.
_MAYBE_NOT_ONE_CELL = re.compile("[^\x00-\u02ff\u0370-\u0482\u048a-\u052f\u2010-\u2027\u2030-\u205e\u2190-\u21ff]")
_DIGIT = re.compile("[0-9]")
_EVENT = protocol.Kind.EVENT.value


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
        ("call_id", value_text(protocol.redact(event.call_id)) or "-"),
        ("time", local_iso(event.timestamp)),
    ]
    clean = event_json(event)
    typed = [(name, value_text(clean[name]) if clean[name] != "" else '""') for name in event.typed_fields]
    payload = event.payload
    for key in ("event_channel", "context", "project_id", "space_id"):
        value = payload.get(key)
        if value in ("", None) or (key in event.typed_fields and clean[key] == value):
            continue
        rows.append(
            (key if key not in event.typed_fields else f"{key} (top level)", value_text(protocol.redact(value)))
        )
    rows += typed
    width = max(len(name) for name, _ in rows)
    fam = style.code(family_sgr(event.event_type))
    kind = escape(event.event_type) or "-"
    head = f"{style.bold}{type(event).__name__}{style.reset}  {fam}{kind}{style.reset}"
    body = [f"  {style.dim}{name:<{width}}{style.reset}  {value}" for name, value in rows]
    return "\n".join([head, *body]) + "\n"


_NOTHING: tuple[str, ...] = ()
_FAILED_STATES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{event_type: (CALL.failed_key, CALL.failed) for event_type in CALL.event_types},
    **{event_type: (MESSAGE.failed_key, MESSAGE.failed) for event_type in MESSAGE.event_types},
    **{event_type: (action.key, action.failed) for event_type, action in ACTIONS.items()},
}
"""Events that report a failure in one key of their params, and its failure values (tuples: a value from the
wire may be unhashable, and a tuple compares instead), from the lifecycles: tested inline, per event."""
_FAILURES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "calling.call.collect": lambda p: get(p, "result", "type") == "error" or p.get("state") in ACTION_FAILED,
    "calling.call.detect": lambda p: get(p, "detect", "params", "event") in ACTION_FAILED,
    "calling.call.fax": lambda p: get(p, "fax", "type") == "error" or get(p, "fax", "params", "success") is False,
    "calling.error": lambda p: True,
}
"""The other events that can report a failure, with their tests. Failures are highlighted when colour is on."""

_SHOWN_TYPES = {"signalwire.authorization.state": "signalwire.auth.state"}
"""Abbreviations of types longer than the type column, so the columns after it stay aligned."""

_TYPE_WIDTH = 24
_PASSED = " · passed"


def headline(event_type: str, params: dict[str, Any]) -> str:
    """What happened, in a few words, from the payload's params: the phrase table's headline."""
    return describer(event_type, headline=True)(params)


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
        self._alert = style.code(ALERT).encode()
        self._reset_bytes = self._reset.encode()
        self._millis = tuple(f"{ms}{self._reset} ".encode() for ms in _MILLIS)
        self._no_time = (b"", f"{self._dim}--:--:--.---{self._reset} ".encode())
        self._minute = -1
        self._start = self._end = 0.0
        self._clock = b""
        self._second = b""
        self._kinds: _Cache[_Kind] = _Cache(1 << 20)
        self._calls: _Cache[bytes] = _Cache(2 << 20)
        self._call_codes = {sgr: style.code(sgr) for sgr in CALL_COLORS}
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
        make = describer(event_type, headline=True)
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
                cell = f"{self._call_codes[call_sgr(call_id)]}{short(call_id):<8}{self._reset} ".encode()
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
        if ts.__class__ is not float or not 0.0 < ts < inf:  # hot path: a float at the top level
            ts = event_time(payload)
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
            value = value_text(clean[name])
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
    frame["method"] = _EVENT
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
