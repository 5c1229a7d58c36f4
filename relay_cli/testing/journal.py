"""The control plane's journal as a test reads it: entries in ``mock_relay``'s shape, found by method or event type.

An entry is what ``GET /__mock__/journal`` returns (EMULATOR.md section 6): ``timestamp``, ``direction``
(``"recv"``: from the app, ``"send"``: to it), ``method``, ``request_id``, ``frame``, ``connection_id``,
``session_id``. Entries stay plain dicts, so an assertion can reach into any frame; :class:`Journal` adds the
finding a test does again and again, and the lines a failure shows, which are ``relay serve --frames``' lines
(the same view, so one copy of how a frame reads).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP
from relay_cli.views.frames import FrameView
from relay_cli.views.text import Style

__all__ = ["EVENT", "Journal", "Where", "describe", "frame_lines", "matches", "params_of"]

__tracebackhide__ = True  # a failure points at the test's line, not at these helpers

EVENT = "signalwire.event"
Where = Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None
"""Which params an entry must have: a mapping they contain (key by key, equal values), or a predicate."""
_WIDTH = 150


class Journal(list[dict[str, Any]]):
    """The journal's entries, oldest first (a list), with finders.

    ``method`` and ``event_type`` take shell patterns (``"calling.play*"``); ``where`` narrows by params: the
    request's ``params``, or for an event the event's own ``params`` (``frame.params.params``).
    """

    def requests(self, method: str | None = None, *, where: Where = None) -> list[dict[str, Any]]:
        """The requests the app sent (results and ACKs are not requests)."""
        return [e for e in self if matches(e, method=method or "*", where=where)]

    def events(self, event_type: str | None = None, *, where: Where = None) -> list[dict[str, Any]]:
        """The ``signalwire.event`` frames sent to the app."""
        return [e for e in self if matches(e, event_type=event_type or "*", where=where)]

    def request_params(self, method: str | None = None, *, where: Where = None) -> list[dict[str, Any]]:
        """The ``params`` of :meth:`requests`."""
        return [params_of(e) for e in self.requests(method, where=where)]

    def event_params(self, event_type: str | None = None, *, where: Where = None) -> list[dict[str, Any]]:
        """The event's own ``params`` of each of :meth:`events`."""
        return [params_of(e) for e in self.events(event_type, where=where)]

    def methods(self) -> list[str]:
        """The method of every request the app sent, in order: a quick picture of what it did."""
        return [str(e["method"]) for e in self.requests()]

    def lines(self, last: int = 10) -> list[str]:
        """The last ``last`` frames as readable lines, ACKs and pings left out."""
        return frame_lines(self, last)


def matches(
    entry: Mapping[str, Any], *, method: str | None = None, event_type: str | None = None, where: Where = None
) -> bool:
    """Whether ``entry`` is a request of ``method`` (from the app) or an event of ``event_type`` (to it)."""
    frame = entry.get("frame")
    if not isinstance(frame, dict) or not isinstance(frame.get("method"), str):
        return False
    if method is not None and (entry.get("direction") != "recv" or not fnmatch.fnmatchcase(frame["method"], method)):
        return False
    if event_type is not None:
        if entry.get("direction") != "send" or frame["method"] != EVENT:
            return False
        outer = frame.get("params")
        kind = outer.get("event_type") if isinstance(outer, dict) else None
        if not isinstance(kind, str) or not fnmatch.fnmatchcase(kind, event_type):
            return False
    if where is None:
        return True
    params = params_of(entry)
    if callable(where):
        return bool(where(params))
    return all(key in params and params[key] == value for key, value in where.items())


def params_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A request's ``params``; an event's own ``params`` (inside ``signalwire.event``); else ``{}``."""
    frame = entry.get("frame")
    if not isinstance(frame, dict) or not isinstance(frame.get("params"), dict):
        return {}
    params: dict[str, Any] = frame["params"]
    if frame.get("method") == EVENT:
        inner = params.get("params")
        return inner if isinstance(inner, dict) else {}
    return params


def describe(method: str | None, event_type: str | None, where: Where) -> str:
    """What a wait is for, as a failure names it."""
    what = f"a request {method}" if method is not None else f"an event {event_type}"
    if where is None:
        return what
    if callable(where):
        return f"{what} whose params satisfy {getattr(where, '__qualname__', repr(where))}"
    return f"{what} with " + ", ".join(f"{k}={v!r}" for k, v in where.items())


def frame_lines(entries: Iterable[Mapping[str, Any]], last: int = 10) -> list[str]:
    """The last ``last`` frames of ``entries`` as ``relay serve`` shows them, one line each, no colour."""
    view = FrameView(Style(color=False), width=_WIDTH)
    lines: list[str] = []
    for entry in entries:
        frame = entry.get("frame")
        raw = frame.encode() if isinstance(frame, str) else orjson.dumps(frame)
        direction = APP_TO_RELAY if entry.get("direction") == "recv" else RELAY_TO_APP
        at = entry.get("timestamp")
        line = view(
            direction,
            float(at) if isinstance(at, (int, float)) else 0.0,
            str(entry.get("connection_id") or ""),
            None,
            raw,
        )
        if line:
            lines.append(line.decode("utf-8", "replace").rstrip("\n"))
    return lines[-last:] if last > 0 else []
