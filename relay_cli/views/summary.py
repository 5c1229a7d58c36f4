"""Counters over a whole log, for ``relay replay --summary`` and the closing lines of other commands.

A summary answers "what is in this log" without printing it: which events, how calls and messages ended,
how long answered calls lasted and what time the log covers. It sees every event of logs of millions, so
`Summary.feed` does little per event and keeps per-call state only while a call is open.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Final

from relay_cli.event import event_time
from relay_cli.lifecycles import ANSWERED, CALL, ENDED, INBOUND_MESSAGE, MESSAGE
from relay_cli.views.text import escape, local_iso
from relay_cli.views.timeline import bounded_key

__all__ = ["Summary", "nearest_rank", "span_text"]

# Which events move a call (True) or a message (False) along its lifecycle, and the states that end them.
_FAMILIES: Final = {
    **dict.fromkeys(CALL.event_types, True),
    **dict.fromkeys((*MESSAGE.event_types, *INBOUND_MESSAGE.event_types), False),
}
_FINAL_MESSAGE_STATES: Final = frozenset((*MESSAGE.final, *INBOUND_MESSAGE.final))
# Calls or messages open at once beyond this are counted as never finished and forgotten, so a log whose
# calls never end cannot grow memory without bound.
_MAX_OPEN: Final = 100_000
# Ids that just finished, so a redelivered final event (sessions resume by sending un-ACKed events again)
# is not counted twice and a straggler does not reopen the call.
_RECENT: Final = 4_096
# Distinct event types, and end or failure reasons, counted one by one; the rest are counted together, so a
# log of made-up types cannot grow the tables (or the report) without bound. Long ones are held cut short.
_MAX_NAMES: Final = 1_024
_OTHERS: Final = "(other)"


def nearest_rank(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list: the smallest value with ``percent``% at or below it."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def span_text(seconds: float) -> str:
    """A duration as ``1h 2m 3.456s``, leaving out the leading zero units."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{int(hours)}h {int(minutes)}m {secs:.3f}s"
    if minutes:
        return f"{int(minutes)}m {secs:.3f}s"
    return f"{secs:.3f}s"


def _remember(recent: dict[str, None], key: str) -> None:
    recent[key] = None
    if len(recent) > _RECENT:
        del recent[next(iter(recent))]


def _name(counts: dict[str, int] | Counter[str], name: str) -> str:
    """The key to count ``name`` under: itself while the table has room, else ``(other)``."""
    name = bounded_key(name)
    return name if name in counts or len(counts) < _MAX_NAMES else _OTHERS


def _table(title: str, rows: list[tuple[str, int, str]]) -> list[str]:
    """A titled block of ``name count [note]`` rows, names and counts aligned."""
    if not rows:
        return []
    width = max(len(name) for name, _, _ in rows)
    digits = max(len(str(count)) for _, count, _ in rows)
    return [title] + [f"  {name:<{width}}  {count:>{digits}}{note}" for name, count, note in rows]


class Summary:
    """Counts a stream of event payloads; `lines` renders them for stderr at any time.

    Calls are the ids of ``calling.call.state`` and ``calling.call.receive`` events. A call is counted once,
    by its final state and end reason, when it reaches ``ended``; calls still open when `lines` is called
    are ``no end state``. Its duration is the time from ``answered`` to ``ended``. Messages are counted by
    their final state (delivered, undelivered, failed, received), with the reasons of the failures.
    """

    def __init__(self) -> None:
        self._types: dict[str, int] = {}
        self._bad = 0
        self._first = math.inf
        self._last = -math.inf
        self._calls: dict[str, str] = {}
        self._answered: dict[str, float] = {}
        self._finals: Counter[str] = Counter()
        self._calls_forgotten = 0
        self._durations: list[float] = []
        self._recent_calls: dict[str, None] = {}
        self._messages: dict[str, None] = {}
        self._message_finals: Counter[str] = Counter()
        self._reasons: dict[str, Counter[str]] = {}
        self._messages_forgotten = 0
        self._recent_messages: dict[str, None] = {}

    def malformed(self, n: int = 1) -> None:
        """Count lines of the log that were not events at all (bad JSON, not an object, ...)."""
        self._bad += n

    def feed(self, payload: dict[str, Any]) -> None:
        """Count one event; anything it cannot use is skipped, never raised."""
        if not isinstance(payload, dict):
            return
        event_type = payload.get("event_type")
        if event_type.__class__ is not str:
            event_type = "?"
        types = self._types
        count = types.get(event_type)
        if count is None:
            event_type = _name(types, event_type)
            count = types.get(event_type, 0)
        types[event_type] = count + 1
        ts = payload.get("timestamp")
        if ts.__class__ is not float or not (ts > 0.0 and ts - ts == 0.0):
            ts = event_time(payload)
        if ts is not None:
            self._first = min(self._first, ts)
            self._last = max(self._last, ts)
        family = _FAMILIES.get(event_type)
        if family is not None:
            params = payload.get("params")
            if isinstance(params, dict):
                if family:
                    self._call_state(params, ts)
                else:
                    self._message_state(params)

    def _call_state(self, params: dict[str, Any], ts: float | None) -> None:
        call_id = params.get("call_id")
        if call_id.__class__ is not str or not call_id:
            return
        if len(call_id) > 64:
            call_id = bounded_key(call_id)
        if call_id in self._recent_calls:
            return
        state = params.get("call_state")
        reason = params.get("end_reason")
        if reason.__class__ is str and len(reason) > 64:
            reason = bounded_key(reason)
        calls = self._calls
        if state == ENDED:
            known = calls.pop(call_id, "")
            answered = self._answered.pop(call_id, None)
            if reason.__class__ is not str or not reason:
                reason = known
            self._finals[_name(self._finals, f"ended/{reason}" if reason else "ended")] += 1
            if answered is not None and ts is not None and ts >= answered:
                self._durations.append(ts - answered)
            _remember(self._recent_calls, call_id)
            return
        if call_id not in calls:
            if len(calls) >= _MAX_OPEN:
                oldest = next(iter(calls))
                del calls[oldest]
                self._answered.pop(oldest, None)
                self._calls_forgotten += 1
            calls[call_id] = ""
        if reason.__class__ is str and reason:
            calls[call_id] = reason
        if state == ANSWERED and ts is not None and call_id not in self._answered:
            self._answered[call_id] = ts

    def _message_state(self, params: dict[str, Any]) -> None:
        message_id = params.get("message_id")
        if message_id.__class__ is not str or not message_id:
            return
        if len(message_id) > 64:
            message_id = bounded_key(message_id)
        if message_id in self._recent_messages:
            return
        state = params.get("message_state")
        messages = self._messages
        if state.__class__ is str and state in _FINAL_MESSAGE_STATES:
            messages.pop(message_id, None)
            self._message_finals[state] += 1
            reason = params.get("reason")
            if reason.__class__ is str and reason:
                reasons = self._reasons.setdefault(state, Counter())
                reasons[_name(reasons, reason)] += 1
            _remember(self._recent_messages, message_id)
            return
        if message_id not in messages:
            if len(messages) >= _MAX_OPEN:
                del messages[next(iter(messages))]
                self._messages_forgotten += 1
            messages[message_id] = None

    def lines(self) -> list[str]:
        """Plain text lines: events by type, calls, call durations, messages, time span, malformed lines."""
        out: list[str] = []
        total = sum(self._types.values())
        by_type = sorted(self._types.items(), key=lambda item: (-item[1], item[0]))
        out += _table(f"events by type ({total})", [(escape(name), count, "") for name, count in by_type])
        if not total:
            out.append("no events")
        calls = [(escape(name), count, "") for name, count in self._finals.most_common()]
        unfinished = len(self._calls) + self._calls_forgotten
        if unfinished:
            calls.append(("no end state", unfinished, ""))
        out += _table(f"calls by final state ({sum(c for _, c, _ in calls)})", calls)
        if self._durations:
            ordered = sorted(self._durations)
            stats = "  ".join(
                f"{name} {value:.3f}s"
                for name, value in (
                    ("p50", nearest_rank(ordered, 50)),
                    ("p90", nearest_rank(ordered, 90)),
                    ("p99", nearest_rank(ordered, 99)),
                    ("max", ordered[-1]),
                )
            )
            out += [f"call duration, answered to ended ({len(ordered)} calls)", f"  {stats}"]
        messages: list[tuple[str, int, str]] = []
        for state, count in self._message_finals.most_common():
            reasons = self._reasons.get(state)
            note = ""
            if reasons:
                top = ", ".join(f"{escape(reason)} {n}" for reason, n in reasons.most_common(3))
                more = len(reasons) - 3
                note = f"  (reasons: {top}{f', {more} more' if more > 0 else ''})"
            messages.append((escape(state), count, note))
        pending = len(self._messages) + self._messages_forgotten
        if pending:
            messages.append(("no final state", pending, ""))
        out += _table(f"messages by final state ({sum(c for _, c, _ in messages)})", messages)
        if self._first <= self._last:
            span = span_text(self._last - self._first)
            out += ["time span", f"  {local_iso(self._first)} → {local_iso(self._last)}  ({span})"]
        out.append(f"malformed lines {self._bad}")
        return out
