"""Scenarios: events a test queues for the next request of a method, as SignalWire's ``mock_relay`` does.

In ``scripted`` mode a verb gets its result and nothing else; a test that needs the events a real call would
send queues them here through the control plane (EMULATOR.md section 6). A method scenario is a list of event
params consumed once, in order, by the next request of that method (in one session when scoped): after the
result each is sent ``delay_ms`` after the one before, with the request's ``call_id``, ``control_id`` and
``node_id`` filled in where the event leaves them out. A dial scenario answers the ``calling.dial`` carrying its
tag with the legs' state events and the final ``calling.call.dial``.

:meth:`Scenarios.after_request` is the hook the core calls after each handled request; delays are real
milliseconds (``core.later(..., scaled=False)``), whatever ``--speed`` says, as a test wrote them.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay_cli.lifecycles import MESSAGE

if TYPE_CHECKING:
    from relay_cli.emulator.methods import Request
    from relay_cli.emulator.sessions import EmulatorCore, Session

__all__ = [
    "DIAL_METHOD",
    "MAX_DELAY_MS",
    "MAX_EVENTS",
    "MAX_QUEUED",
    "DialScenario",
    "Emit",
    "ScenarioError",
    "Scenarios",
    "default_event_type",
    "parse_dial",
    "parse_events",
]

DIAL_METHOD = "calling.dial"
MAX_EVENTS = 1000
"""Events in one scenario."""
MAX_QUEUED = 10_000
"""Scenarios waiting at once, method and dial scenarios together."""
MAX_DELAY_MS = 600_000
"""The longest ``delay_ms`` (ten minutes)."""
DEFAULT_DELAY_MS = 10
_DIAL_STATES = ("created", "ringing", "answered")
_LOSER_STATES = ("created", "ended")
_FILLED = ("call_id", "control_id", "node_id")


class ScenarioError(ValueError):
    """A scenario that cannot be queued; the message names the field and what is wrong."""


@dataclass(frozen=True, slots=True)
class Emit:
    """One event of a method scenario: its params, its type (None: the method's default), its delay."""

    params: dict[str, Any]
    event_type: str | None
    delay_ms: float

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"emit": self.params, "delay_ms": self.delay_ms}
        if self.event_type is not None:
            out["event_type"] = self.event_type
        return out


@dataclass(frozen=True, slots=True)
class DialScenario:
    """The legs of a ``calling.dial``: a winner, losers, and the ``calling.call.dial`` that names the winner."""

    tag: str
    winner_call_id: str
    states: tuple[str, ...]
    node_id: str | None
    device: dict[str, Any] | None
    losers: tuple[tuple[str, tuple[str, ...]], ...]
    delay_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "winner_call_id": self.winner_call_id,
            "states": list(self.states),
            "node_id": self.node_id,
            "device": self.device,
            "losers": [{"call_id": c, "states": list(s)} for c, s in self.losers],
            "delay_ms": self.delay_ms,
        }


def default_event_type(method: str) -> str | None:
    """The event a method's scenario sends unless it says otherwise: ``calling.play.pause`` → ``calling.call.play``,
    ``messaging.send`` → ``messaging.state``; None for other methods."""
    if method.startswith("calling.") and len(method) > len("calling."):
        return "calling.call." + method[len("calling.") :].split(".", maxsplit=1)[0]
    if method == "messaging.send":
        return MESSAGE.event_types[0]
    return None


def parse_events(method: str, value: Any) -> list[Emit]:
    """A method scenario from its JSON: ``[{"emit": {...}, "event_type"?, "delay_ms"?}, ...]``."""
    if not method or len(method) > 128:
        raise ScenarioError("method: must be 1 to 128 characters")
    if not isinstance(value, list):
        raise ScenarioError("body: must be an array of {emit, event_type?, delay_ms?} objects")
    if len(value) > MAX_EVENTS:
        raise ScenarioError(f"body: at most {MAX_EVENTS} events")
    events = []
    for i, item in enumerate(value):
        where = f"[{i}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{where}: must be an object")
        _known(item, ("emit", "event_type", "delay_ms"), where)
        params = item.get("emit")
        if not isinstance(params, dict):
            raise ScenarioError(f"{where}.emit: must be an object (the event's params)")
        event_type = item.get("event_type")
        if event_type is not None and (not isinstance(event_type, str) or not event_type):
            raise ScenarioError(f"{where}.event_type: must be a non-empty string")
        if event_type is None and default_event_type(method) is None:
            raise ScenarioError(f"{where}.event_type: required, {method!r} has no default event type")
        events.append(Emit(params, event_type, _delay(item, f"{where}.delay_ms")))
    return events


def parse_dial(value: Any) -> DialScenario:
    """A dial scenario from its JSON: ``{tag, winner_call_id?, states?, node_id?, device?, losers?, delay_ms?}``."""
    if not isinstance(value, dict):
        raise ScenarioError("body: must be an object with a tag")
    _known(value, ("tag", "winner_call_id", "states", "node_id", "device", "losers", "delay_ms"), "body")
    tag = value.get("tag")
    if not isinstance(tag, str) or not tag:
        raise ScenarioError("tag: must be a non-empty string (the tag of the calling.dial to answer)")
    winner = _text(value, "winner_call_id", "winner_call_id") or str(uuid.uuid4())
    node_id = _text(value, "node_id", "node_id")
    device = value.get("device")
    if device is not None and not isinstance(device, dict):
        raise ScenarioError("device: must be an object ({type, params})")
    losers_value = value.get("losers", [])
    if not isinstance(losers_value, list) or len(losers_value) > 100:
        raise ScenarioError("losers: must be an array of at most 100 {call_id, states?} objects")
    losers = []
    for i, loser in enumerate(losers_value):
        where = f"losers[{i}]"
        if not isinstance(loser, dict):
            raise ScenarioError(f"{where}: must be an object")
        _known(loser, ("call_id", "states"), where)
        call_id = _text(loser, "call_id", f"{where}.call_id") or str(uuid.uuid4())
        losers.append((call_id, _states(loser, f"{where}.states", _LOSER_STATES)))
    return DialScenario(
        tag=tag,
        winner_call_id=winner,
        states=_states(value, "states", _DIAL_STATES),
        node_id=node_id,
        device=device,
        losers=tuple(losers),
        delay_ms=_delay(value, "delay_ms"),
    )


class Scenarios:
    """The queues of one emulator, consumed by :meth:`after_request`."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core
        self._methods: dict[str, deque[tuple[str | None, list[Emit]]]] = {}
        self._dials: deque[tuple[str | None, DialScenario]] = deque()

    def queue(self, method: str, events: list[Emit], session_id: str | None = None) -> int:
        """Queue a method scenario for the next ``method`` request (in ``session_id``'s session only, if given)."""
        self._room()
        self._methods.setdefault(method, deque()).append((session_id, events))
        return len(events)

    def queue_dial(self, dial: DialScenario, session_id: str | None = None) -> None:
        self._room()
        self._dials.append((session_id, dial))

    def reset(self) -> None:
        self._methods.clear()
        self._dials.clear()

    def __len__(self) -> int:
        return sum(len(q) for q in self._methods.values()) + len(self._dials)

    def to_json(self) -> dict[str, Any]:
        """What waits: ``{"methods": {method: [{session_id, events}]}, "dials": [{session_id, ...}]}``."""
        return {
            "methods": {
                m: [{"session_id": s, "events": [e.to_json() for e in events]} for s, events in q]
                for m, q in self._methods.items()
                if q
            },
            "dials": [{"session_id": s, **d.to_json()} for s, d in self._dials],
        }

    def _room(self) -> None:
        if len(self) >= MAX_QUEUED:
            raise ScenarioError(f"at most {MAX_QUEUED} scenarios may wait at once (POST /__mock__/scenarios/reset)")

    # -- the hook --------------------------------------------------------------------------------------------

    def after_request(self, req: Request, reply: dict[str, Any] | None) -> None:
        """A request was answered: if a scenario waits for it, put its events on the timers."""
        if reply is None or "result" not in reply:
            return
        if req.method == DIAL_METHOD:
            tag = req.params.get("tag")
            dial = _take(self._dials, req.session, lambda d: d.tag == tag)
            if dial is not None:
                self._play(req.session, self._dial_events(dial, req))
                return
        queue = self._methods.get(req.method)
        if not queue:
            return
        events = _take(queue, req.session, lambda _: True)
        if events is None:
            return
        default = default_event_type(req.method) or ""
        filled = {k: req.params[k] for k in _FILLED if isinstance(req.params.get(k), str)}
        self._play(
            req.session,
            [(e.event_type or default, {**filled, **e.params}, e.delay_ms) for e in events],
        )

    def _dial_events(self, dial: DialScenario, req: Request) -> list[tuple[str, dict[str, Any], float]]:
        node_id = dial.node_id or _param(req, "node_id") or self.core.node_id
        device = dial.device if dial.device is not None else _first_device(req.params.get("devices"))
        delay = dial.delay_ms

        def state(call_id: str, call_state: str) -> tuple[str, dict[str, Any], float]:
            params = {
                "call_id": call_id,
                "node_id": node_id,
                "tag": dial.tag,
                "call_state": call_state,
                "direction": "outbound",
                "device": device,
            }
            return "calling.call.state", params, delay

        out = [state(dial.winner_call_id, s) for s in dial.states]
        for call_id, states in dial.losers:
            out.extend(state(call_id, s) for s in states)
        call = {"call_id": dial.winner_call_id, "node_id": node_id, "tag": dial.tag, "device": device}
        final = {"tag": dial.tag, "node_id": node_id, "dial_state": "answered", "call": {**call, "dial_winner": True}}
        out.append(("calling.call.dial", final, delay))
        return out

    def _play(self, session: Session, events: list[tuple[str, dict[str, Any], float]]) -> None:
        core = self.core
        due = 0.0
        for event_type, params, delay_ms in events:
            due += delay_ms / 1000

            def send(event_type: str = event_type, params: dict[str, Any] = params) -> None:
                payload = {"event_type": event_type, "timestamp": core.wall(), "space_id": core.space_id}
                core.deliver(session, {**payload, "params": params})

            core.later(due, send, scaled=False)


def _take(queue: deque[tuple[str | None, Any]], session: Session, fits: Any) -> Any:
    """Remove and return the first entry for ``session`` (or unscoped) that ``fits``; None if there is none."""
    for i, (scope, item) in enumerate(queue):
        if (scope is None or scope == session.sessionid) and fits(item):
            del queue[i]
            return item
    return None


def _param(req: Request, name: str) -> str | None:
    value = req.params.get(name)
    return value if isinstance(value, str) and value else None


def _first_device(devices: Any) -> dict[str, Any]:
    """The first device of a ``calling.dial`` (a list of lists), or a plain phone when it names none."""
    if isinstance(devices, list) and devices and isinstance(devices[0], list) and devices[0]:
        first = devices[0][0]
        if isinstance(first, dict):
            return first
    return {"type": "phone", "params": {}}


def _known(value: Mapping[str, Any], fields: tuple[str, ...], where: str) -> None:
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise ScenarioError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(fields)})")


def _text(value: Mapping[str, Any], name: str, where: str) -> str | None:
    raw = value.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > 256:
        raise ScenarioError(f"{where}: must be a string of 1 to 256 characters")
    return raw


def _states(value: Mapping[str, Any], where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = value.get(where.rsplit(".", 1)[-1], list(default))
    if not isinstance(raw, list) or len(raw) > 100 or not all(isinstance(s, str) and s for s in raw):
        raise ScenarioError(f"{where}: must be an array of at most 100 state names")
    return tuple(raw)


def _delay(value: Mapping[str, Any], where: str) -> float:
    raw = value.get("delay_ms", DEFAULT_DELAY_MS)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= MAX_DELAY_MS:
        raise ScenarioError(f"{where}: must be a number of milliseconds from 0 to {MAX_DELAY_MS}")
    return float(raw)
