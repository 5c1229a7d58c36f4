"""The text helpers every view uses: payload values as short terminal-safe text, the escaping, the colours.

Views show what arrived over the wire, and real traffic is loose (numbers as strings, objects where a string was
expected), so every value goes through `s`: strings as they are, escaped; nested values as compact JSON; nothing
at all for null. One copy, so the pretty line, the timeline and the summary say the same thing of the same input.

Several of these run for every event of logs of millions (hot paths): they test for the common case (a printable
string) by class before anything else, and `s` is best called only when that test fails.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

__all__ = [
    "ALERT",
    "CALL_COLORS",
    "Style",
    "call_sgr",
    "escape",
    "excerpt",
    "family_sgr",
    "get",
    "join",
    "local_iso",
    "numbers",
    "obj",
    "present",
    "route",
    "s",
    "short",
    "terminal_json",
    "value_text",
    "with_reason",
]


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
_ESCAPE_TABLE: Final = str.maketrans(_ESCAPES)


def escape(text: str) -> str:
    """Make untrusted text safe for a terminal: control, format and bidi characters become escapes."""
    return text if text.isprintable() else text.translate(_ESCAPE_TABLE)


def _json_escape(c: int) -> str:
    if c < 0x10000:
        return f"\\u{c:04x}"
    c -= 0x10000
    return f"\\u{0xD800 + (c >> 10):04x}\\u{0xDC00 + (c & 0x3FF):04x}"


_JSON_ESCAPE_TABLE: Final = str.maketrans({c: _json_escape(c) for c in (0x7F, *_C1, *_INVISIBLE)})


def terminal_json(data: bytes) -> bytes:
    """JSON text safe for a terminal, meaning the same JSON: DEL, C1 controls and the characters
    :func:`escape` hides become ``\\uXXXX`` escapes (orjson writes them raw, and the C0 controls it
    escapes already). Bytes that are all ASCII but DEL, nearly every line, pass untouched."""
    if data.isascii() and b"\x7f" not in data:
        return data
    return data.decode("utf-8", "surrogateescape").translate(_JSON_ESCAPE_TABLE).encode("utf-8", "surrogateescape")


# -- payload values as text ---------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """Any payload value as one escaped line: strings as they are, the rest (null included) as compact JSON."""
    if isinstance(value, str):
        return escape(value)
    try:
        return escape(orjson.dumps(value).decode())
    except TypeError:
        return escape(repr(value))


def s(value: Any) -> str:
    """A payload value as escaped text; ``""`` for null. Nested values are compact JSON, as `value_text` writes them."""
    if value.__class__ is str:
        return value if value.isprintable() else value.translate(_ESCAPE_TABLE)
    if value is None:
        return ""
    if value.__class__ is int:
        return str(value)
    return value_text(value)


def short(ident: Any) -> str:
    """The first eight characters of an id, escaped: escaping the rest of it is moot."""
    if ident.__class__ is str:
        head: str = ident[:8]
        return head if head.isprintable() else head.translate(_ESCAPE_TABLE)[:8]
    return s(ident)[:8]


def join(*parts: str) -> str:
    """The non-empty parts, space-separated: a loop, cheaper than ``" ".join(filter(None, parts))`` for a few.

    The frequent event types append their optional parts with f-strings instead: packing the parts
    costs more than the joining."""
    out = ""
    for part in parts:
        if part:
            out = f"{out} {part}" if out else part
    return out


def obj(params: dict[str, Any], key: str) -> dict[str, Any]:
    """``params[key]`` when it is an object, else an empty one: real traffic puts anything anywhere."""
    value = params.get(key)
    return value if isinstance(value, dict) else {}


def get(params: dict[str, Any], *path: str) -> Any:
    """The value at a path of keys, or None where the path breaks."""
    node: Any = params
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def present(value: Any) -> bool:
    """Whether a value says something: neither null nor the empty string (``0`` and ``false`` do)."""
    return value is not None and value != ""


def excerpt(value: Any, width: int = 40) -> str:
    """A value quoted, cut to ``width`` characters with ``…``; ``""`` when it is empty."""
    shown = s(value)
    if not shown:
        return ""
    return f'"{shown[:width]}…"' if len(shown) > width else f'"{shown}"'


def numbers(device: Any) -> str:
    """``from → to`` of a device object (see `route`), phone style (``from_number``) or, where that is empty,
    SIP style (``from``); ``""`` when it names neither."""
    params = device.get("params") if device.__class__ is dict else None
    if params.__class__ is not dict:
        return ""
    src = params.get("from_number") or params.get("from")
    dst = params.get("to_number") or params.get("to")
    # `route`, written out: a hot path (the pretty line of every new or ringing call)
    return f"{s(src) or '?'} → {s(dst) or '?'}" if src or dst else ""


def route(src: Any, dst: Any) -> str:
    """``+15551230000 → +15557650000``; ``?`` stands for the missing end."""
    return f"{s(src) or '?'} → {s(dst) or '?'}"


def with_reason(state: Any, reason: Any) -> str:
    """A state, and its reason in parentheses when there is one: ``ended (hangup)``, ``failed (busy)``."""
    shown: str = state if state.__class__ is str and state.isprintable() else s(state)
    if reason is None or reason == "":
        return shown
    return f"{shown} ({s(reason)})" if shown else f"({s(reason)})"


def local_iso(ts: float) -> str:
    """Local ISO-8601 with milliseconds; ``-`` when the event carried no time."""
    if not ts:
        return "-"
    try:
        return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.3f}"


# -- colours ------------------------------------------------------------------------------------------------


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


ALERT: Final = "1;31"
_FAMILY_COLORS: Final = (
    ("calling.error", ALERT),
    ("calling.conference", "94"),
    ("calling.", "36"),
    ("messaging.", "35"),
    ("signalwire.", "2"),
    ("", "33"),
)
CALL_COLORS: Final = ("38;5;39", "38;5;42", "38;5;208", "38;5;170", "38;5;220", "38;5;81", "38;5;203", "38;5;149")


def family_sgr(event_type: str) -> str:
    """The colour of an event type's family: calls, conferences, errors, messages, the session's own."""
    return next(sgr for prefix, sgr in _FAMILY_COLORS if event_type.startswith(prefix))


def call_sgr(call_id: str) -> str:
    """The same colour for every event of one call, in every run and every view."""
    return CALL_COLORS[zlib.crc32(call_id.encode()) % len(CALL_COLORS)]
