"""What ``relay proxy`` says of a session when it exits: requests, events, ACKs, connections, frames.

It is fed every frame (filtered out or not) through :meth:`ProxyStats.see`, so its cost per frame is a few
counters and at most one histogram sample; latencies go to :class:`~relay_cli.views.latency.Histogram`s, never
to lists, and names from the wire are bounded as the replay summary bounds them, so memory stays flat however
long the proxy runs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, Kind, call_control_result, is_success
from relay_cli.views.conversation import Exchange
from relay_cli.views.frames import millis
from relay_cli.views.latency import Histogram
from relay_cli.views.text import escape
from relay_cli.views.timeline import bounded_key

__all__ = ["MAX_NAMES", "ProxyStats"]

MAX_NAMES: Final = 1_024
"""Methods and event types counted one by one; the rest are counted together as ``(other)``."""
_OTHERS: Final = "(other)"
_EVENT: Final = Kind.EVENT
_RESULT: Final = Kind.RESULT
_ERROR: Final = Kind.ERROR
_CONNECT: Final = Kind.CONNECT
"""Kinds as module constants: an enum member looked up on its class costs 70 ns, on every frame."""


class _Method:
    __slots__ = ("count", "errors", "latency")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latency = Histogram()


def _name(table: dict[str, Any], name: str) -> str:
    name = bounded_key(name)
    return name if name in table or len(table) < MAX_NAMES else _OTHERS


def _method(table: dict[str, _Method], method: str) -> _Method:
    name = _name(table, method)
    entry = table.get(name)
    if entry is None:
        entry = table[name] = _Method()
    return entry


def _failed(frame: Any) -> bool:
    """A result whose code (its own, or its inner ``result``'s, as call control nests it) is not 2xx."""
    value = frame.get("result")
    return value.__class__ is dict and not is_success(call_control_result(value))


def _quantiles(h: Histogram) -> str:
    return f"p50 {millis(h.quantile(0.5))}  p99 {millis(h.quantile(0.99))}  max {millis(h.max)}"


class ProxyStats:
    """Counters over every frame of every connection; :meth:`lines` renders them, plain text, at any time."""

    __slots__ = (
        "ack_errors",
        "acks",
        "awaiting",
        "connections",
        "events",
        "flagged",
        "frames",
        "from_relay",
        "missing",
        "refused",
        "requests",
        "resumes",
        "unpaired",
    )

    def __init__(self) -> None:
        self.frames = {APP_TO_RELAY: 0, RELAY_TO_APP: 0}
        """Frames by direction."""
        self.requests: dict[str, _Method] = {}
        """The app's requests by method, with RELAY's answer times and errors."""
        self.from_relay: dict[str, _Method] = {}
        """RELAY's requests to the app (its pings, disconnects) by method, with the app's answer times and errors:
        kept apart, so the app's answers are never counted as RELAY's."""
        self.events: dict[str, int] = {}
        self.acks = Histogram()
        """The app's ACK latencies."""
        self.ack_errors = 0
        """Events the app answered with an error."""
        self.missing = 0
        """Events with no ACK in :data:`~relay_cli.views.conversation.ACK_WAIT` seconds, or none before their
        connection closed."""
        self.awaiting = 0
        """Events still awaiting their ACK at exit, not yet overdue."""
        self.unpaired = 0
        """Answers to no request seen (their request was before the start, or never sent)."""
        self.flagged: Counter[str] = Counter()
        """Frames by the problem they were flagged for (not JSON, over the frame limit...)."""
        self.connections = 0
        """The highest connection number seen: connections are numbered 1, 2, 3..."""
        self.refused = 0
        self.resumes = 0
        """``signalwire.connect`` requests resuming a session (with a ``protocol``)."""

    def see(self, ex: Exchange) -> None:
        """Count one frame."""
        frames = self.frames
        frames[ex.direction] = frames.get(ex.direction, 0) + 1
        if ex.connection > self.connections:  # noqa: PLR1730 - cheaper than max() on the hot path
            self.connections = ex.connection
        kind = ex.kind
        if kind is None:
            self.flagged[ex.problem] += 1
        elif kind is _EVENT:
            events = self.events
            count = events.get(ex.method)
            if count is None:
                name = _name(events, ex.method)
                events[name] = events.get(name, 0) + 1
            else:
                events[ex.method] = count + 1
        elif kind is _RESULT or kind is _ERROR:
            asked = ex.asked
            if asked is None:
                self.unpaired += 1
            elif asked.kind is _EVENT:
                if ex.took is not None:
                    self.acks.add(ex.took)
                if kind is _ERROR:
                    self.ack_errors += 1
            else:
                table = self.from_relay if asked.key[1] == RELAY_TO_APP else self.requests
                method = table.get(ex.method) or _method(table, ex.method)
                if ex.took is not None:
                    method.latency.add(ex.took)
                if kind is _ERROR or _failed(ex.frame):
                    method.errors += 1
        else:
            table = self.from_relay if ex.direction == RELAY_TO_APP else self.requests
            (table.get(ex.method) or _method(table, ex.method)).count += 1
            if kind is _CONNECT:
                params = ex.frame.get("params")
                if params.__class__ is dict and params.get("protocol"):
                    self.resumes += 1

    def link(self, what: str, connection: int) -> None:
        """Count a connection's ``open``, ``refused`` or ``closed``."""
        self.connections = max(self.connections, connection)
        if what == "refused":
            self.refused += 1

    @property
    def reconnects(self) -> int:
        """App connections after the first."""
        return max(self.connections - self.refused - 1, 0)

    def lines(self) -> list[str]:
        """The exit summary: the app's requests by method (RELAY's answer times), RELAY's requests to the app (the
        app's), events by type, ACKs, connections, frames."""
        out = _methods("requests by method", self.requests) if self.requests else ["no requests"]
        if self.from_relay:
            out += _methods("requests from RELAY", self.from_relay)
        if self.events:
            rows2 = sorted(self.events.items(), key=lambda item: (-item[1], item[0]))
            width = max(len(escape(name)) for name, _ in rows2)
            digits = max(len(str(count)) for _, count in rows2)
            out.append(f"events by type ({sum(self.events.values())})")
            out += [f"  {escape(name):<{width}}  {count:>{digits}}" for name, count in rows2]
        else:
            out.append("no events")
        acks = [f"ACKs {self.acks.count}"]
        if self.acks.count:
            acks.append(_quantiles(self.acks))
        acks.append(f"missing {self.missing}")
        if self.ack_errors:
            acks.append(f"errors {self.ack_errors}")
        if self.awaiting:
            acks.append(f"awaited at exit {self.awaiting}")
        out.append("  ".join(acks))
        out.append(
            f"connections {self.connections}  reconnects {self.reconnects}  resumes {self.resumes}"
            + (f"  refused {self.refused}" if self.refused else "")
        )
        others = sum(n for d, n in self.frames.items() if d not in (APP_TO_RELAY, RELAY_TO_APP))
        frames = f"frames {APP_TO_RELAY} {self.frames[APP_TO_RELAY]}  {RELAY_TO_APP} {self.frames[RELAY_TO_APP]}"
        if others:
            frames += f"  other {others}"
        flagged = sum(self.flagged.values())
        frames += f"  flagged {flagged}"
        if flagged:
            frames += " (" + ", ".join(f"{problem} {n}" for problem, n in self.flagged.most_common()) + ")"
        out.append(frames)
        if self.unpaired:
            out.append(f"answers to no request seen {self.unpaired}")
        return out


def _methods(title: str, table: dict[str, _Method]) -> list[str]:
    """A block of the summary: ``title (N)``, then a line per method, the most asked first."""
    rows = sorted(table.items(), key=lambda item: (-item[1].count, item[0]))
    width = max(len(escape(name)) for name, _ in rows)
    digits = max(len(str(m.count)) for _, m in rows)
    out = [f"{title} ({sum(m.count for _, m in rows)})"]
    for name, m in rows:
        parts = [f"  {escape(name):<{width}}  {m.count:>{digits}}"]
        if m.errors:
            parts.append(f"{m.errors} error{'s' if m.errors != 1 else ''}")
        if m.latency.count:
            parts.append(_quantiles(m.latency))
        out.append("  ".join(parts))
    return out
