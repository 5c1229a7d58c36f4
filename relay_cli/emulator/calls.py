"""Calls the connected app controls (default traffic): the legs, their running actions, the far ends on them.

:class:`CallControl` keeps every call the emulator places or is asked to place: inbound calls from a far end
(:meth:`CallControl.start_inbound`, routed by the core as any inbound call), the legs an app dials
(``calling.dial``) or bridges (``calling.connect``). The verbs of :mod:`relay_cli.emulator.verbs` act on them
through the small API here: :meth:`CallControl.find` (which call a request may control), :meth:`CallControl.event`,
the timers of :class:`Action`, :meth:`CallControl.end` and :meth:`CallControl.ring`.

Time is simulated seconds, divided by the core's ``speed``; every timer checks when it runs whether it still
applies (an action stopped meanwhile, a call that ended), so nothing is cancelled. Events that follow a verb are
put on timers, never sent from inside the handler: a reply always reaches the app before the events it causes.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from relay_cli.emulator.farends import FarEnd
from relay_cli.lifecycles import ANSWERED, CALL, ENDED

if TYPE_CHECKING:
    from relay_cli.emulator.sessions import EmulatorCore, InboundCall, Session

__all__ = [
    "CONFLICT",
    "EVENT_GAP",
    "MAX_CALLS",
    "MAX_RECORDINGS",
    "Action",
    "Call",
    "CallControl",
    "Ringing",
    "speaking_time",
]

STATE = CALL.event_types[1]
CREATED, RINGING, _, ENDING, _ = CALL.states
DIAL_EVENT = "calling.call.dial"
CONNECT_EVENT = "calling.call.connect"
NOT_FOUND, GONE = "404", "410"
MAX_DURATION = "max_duration"
"""The end reason of a call that reached its ``max_duration`` (PROTOCOL.md section 9)."""
CONFLICT = "409"
"""Result code for a call another client controls (the demo traffic's own calls)."""

MAX_CALLS = 10_000
"""Calls remembered for :meth:`CallControl.status`; beyond it the oldest are forgotten."""
MAX_ACTIONS = 1000
"""Actions one call may have running at once; starting one more forgets the oldest."""
MAX_RECORDINGS = 1024
"""Recordings whose audio, and received faxes whose document, the control plane can still hand out (each)."""
T = TypeVar("T")
EVENT_GAP = 0.05
"""Simulated seconds from a verb's result to the first event it causes, and between steps of one change."""
MIN_GAP = 0.001
"""Real seconds: the least delay of any event, so it never overtakes the reply it follows."""
SPEAKING_RATE = 15.0
"""Characters per second of text-to-speech and of what a far end says."""
RING_GAP = 0.2
"""Simulated seconds from a dialled leg's ``created`` to its ``ringing``."""
DIAL_TIMEOUT = 30.0
"""Simulated seconds a dialled device rings before it gives up (``noAnswer``), unless it says otherwise."""
_FROM_PREFIX = "+1555"


def speaking_time(text: str) -> float:
    """Seconds it takes to say ``text`` at :data:`SPEAKING_RATE` (at least a short syllable)."""
    return max(0.2, len(text) / SPEAKING_RATE)


class Action:
    """One running action on a call (a play, a record, a collect...), by its ``control_id``.

    ``step`` is what runs when its current timer falls due; ``epoch`` changes whenever that timer no longer
    applies (paused, stopped, finished), so a stale timer does nothing. ``on_end`` sends the terminal event
    when the app stops it or the call ends under it.
    """

    __slots__ = ("call", "control_id", "data", "done", "due", "epoch", "kind", "left", "on_end", "state", "step")

    def __init__(self, call: Call, control_id: str, kind: str, on_end: Callable[[Action, str], None]) -> None:
        self.call = call
        self.control_id = control_id
        self.kind = kind
        self.on_end = on_end
        self.epoch = 0
        self.done = False
        self.state = ""
        """What the action last told the app (``playing``, ``paused``, ``recording``...)."""
        self.due = 0.0
        self.left: float | None = None
        """Simulated seconds its timer had left when it was paused; None when not paused."""
        self.step: Callable[[Action], None] | None = None
        self.data: dict[str, Any] = {}


class Ringing:
    """Devices being dialled for one ``calling.dial`` or ``calling.connect``: groups in turn, legs in a group
    at once; ``cancelled`` once the parent call ended or the dial was decided."""

    __slots__ = ("cancelled", "legs")

    def __init__(self) -> None:
        self.cancelled = False
        self.legs: list[Call] = []


class Call:
    """One call leg: who is on the far end, its state, whose app controls it, what runs on it."""

    __slots__ = (
        "actions",
        "bridge",
        "call_id",
        "context",
        "device",
        "direction",
        "end_reason",
        "far_end",
        "from_number",
        "inbound",
        "last_session",
        "node_id",
        "owner",
        "parent",
        "ringing",
        "state",
        "tag",
        "to_number",
    )

    def __init__(
        self,
        call_id: str,
        node_id: str,
        direction: str,
        from_number: str,
        to_number: str,
        far_end: FarEnd,
        *,
        context: str = "",
        tag: str = "",
        device: dict[str, Any] | None = None,
    ) -> None:
        self.call_id = call_id
        self.node_id = node_id
        self.direction = direction
        self.from_number = from_number
        self.to_number = to_number
        self.far_end = far_end
        self.context = context
        self.tag = tag
        self.device = device or {"type": "phone", "params": {"from_number": from_number, "to_number": to_number}}
        self.state = CREATED
        self.end_reason: str | None = None
        self.inbound: InboundCall | None = None
        """Routing's record of an inbound call: its holder is whose app controls it."""
        self.owner: Session | None = None
        """The session that dialled an outbound leg."""
        self.last_session: Session | None = None
        self.actions: dict[str, Action] = {}
        self.parent: Call | None = None
        """The call a ``calling.connect`` leg was dialled from: its events carry it as ``peer``."""
        self.bridge: Call | None = None
        """The leg this call is connected to (set on both sides while connected)."""
        self.ringing: Ringing | None = None
        """The devices a ``calling.connect`` from this call is dialling."""

    @property
    def session(self) -> Session | None:
        """Whose app controls the call now (None: nobody holds it, its events go nowhere)."""
        return self.inbound.holder if self.inbound is not None else self.owner

    @property
    def live(self) -> bool:
        return self.state not in (ENDING, ENDED)

    def base(self) -> dict[str, Any]:
        """What every state event of the leg repeats."""
        p: dict[str, Any] = {
            "call_id": self.call_id,
            "node_id": self.node_id,
            "direction": self.direction,
            "device": self.device,
        }
        if self.tag:
            p["tag"] = self.tag
        if self.parent is not None:
            p["peer"] = {"call_id": self.parent.call_id, "node_id": self.parent.node_id}
        return p

    def peer_info(self) -> dict[str, Any]:
        """The leg as a connect event names it."""
        return {"call_id": self.call_id, "node_id": self.node_id, "device": self.device}


class CallControl:
    """The calls of one emulator, by call id (see the module docstring)."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core
        self._calls: OrderedDict[str, Call] = OrderedDict()
        self._answered: set[str] = set()
        self._recordings: OrderedDict[str, float] = OrderedDict()
        self._faxes: OrderedDict[str, int] = OrderedDict()
        self._rng = random.Random(core.seed)
        self._callers = 0
        """Generation of the ``--callers`` stream: starting or stopping one makes the old one stop."""
        self.queues: dict[str, tuple[str, list[str]]] = {}
        """Queue name → its id and the call ids waiting in it."""
        self.conferences: dict[str, tuple[str, set[str]]] = {}
        """Conference name → its id and the call ids in it."""

    # -- the contract's API ----------------------------------------------------------------------------------

    def start_inbound(
        self,
        *,
        context: str,
        from_number: str,
        to_number: str,
        caller: FarEnd,
        call_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Place an inbound call from a far end running ``caller``'s script; offered round robin on ``context``
        (or to the session whose ``sessionid`` is ``session_id``: LookupError when there is none)."""
        target = None
        if session_id is not None:
            target = self.core.session_by_id(session_id)
            if target is None:
                raise LookupError("no such session")
        call = Call(call_id or self.new_id(), self.core.node_id, "inbound", from_number, to_number, caller)
        call.context = context
        self._remember(call)
        call.inbound = self.core.offer_call(context, call.call_id, from_number, to_number, target=target)
        call.last_session = call.inbound.holder

        def ring() -> None:
            if call.state == CREATED:
                self.send_state(call, RINGING)

        if self.core.mode != "scripted":  # there, events come only from the control plane
            self.later(EVENT_GAP, ring)
        return call.call_id

    def status(self, call_id: str) -> dict[str, Any] | None:
        call = self._calls.get(call_id)
        return None if call is None else self._status(call)

    def calls(self) -> list[dict[str, Any]]:
        """Every call remembered, the most recent last."""
        return [self._status(c) for c in self._calls.values()]

    def recording(self, recording_id: str) -> float | None:
        """The duration in seconds of a recording ``calling.record`` (or ``transcribe``) made, if still kept."""
        return self._recordings.get(recording_id)

    def start_callers(
        self,
        per_minute: float,
        *,
        context: str = "default",
        to_number: str = "+15550100002",
    ) -> None:
        """``relay serve --callers RATE``: inbound calls from the default far end, ``per_minute`` calls a simulated
        minute (so ``--speed`` makes them come faster too), evenly spaced; 0 stops them."""
        if per_minute < 0:
            raise ValueError("callers: the rate must not be negative")
        self._callers += 1
        if per_minute == 0:
            return
        generation, gap = self._callers, 60.0 / per_minute
        count = 0

        def place() -> None:
            nonlocal count
            if generation != self._callers:
                return
            count += 1
            number = f"{_FROM_PREFIX}{2_000_000 + count % 8_000_000:07d}"
            self.start_inbound(
                context=context, from_number=number, to_number=to_number, caller=self.core.far_ends.default
            )
            self.later(gap, place)

        self.later(gap, place)

    def stop_callers(self) -> None:
        self._callers += 1

    # -- what the verbs use ----------------------------------------------------------------------------------

    def find(self, session: Session, call_id: str) -> Call | str:
        """The call ``session`` may control, or the result code saying why not: 404 not its call (or none),
        410 ended, 409 a demo call (the emulator's own app controls it)."""
        call = self._calls.get(call_id)
        if call is not None:
            if call.session is session:
                return call if call.live else GONE
            return GONE if not call.live and call.last_session is session else NOT_FOUND
        inbound = session.calls.get(call_id)
        if inbound is not None:
            if inbound.source is not None:
                return CONFLICT
            if inbound.ended:
                return GONE
            if inbound.holder is not session:
                return NOT_FOUND
            return self._adopt(inbound)
        if call_id in session.live_calls:
            return CONFLICT
        if call_id in session.ended_calls:
            return GONE
        return NOT_FOUND

    def new_id(self) -> str:
        """A UUID-shaped id, from the core's seed when it has one."""
        h = f"{(self._rng.getrandbits(128) & ~(0xF << 76 | 0x3 << 62)) | (0x4 << 76 | 0x2 << 62):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` ``delay`` simulated seconds from now, never sooner than :data:`MIN_GAP` real seconds."""
        self.core.later(max(delay / self.core.speed, MIN_GAP), fn, scaled=False)

    def event(self, call: Call, event_type: str, params: dict[str, Any]) -> None:
        """Send the app controlling ``call`` one event now (nowhere when nobody holds the call)."""
        session = call.session
        if session is None:
            return
        core = self.core
        core.deliver(
            session, {"event_type": event_type, "timestamp": core.wall(), "space_id": core.space_id, "params": params}
        )

    def action_event(self, action: Action, event_type: str, **params: Any) -> None:
        call = action.call
        self.event(
            call,
            event_type,
            {"call_id": call.call_id, "node_id": call.node_id, "control_id": action.control_id, **params},
        )

    def call_event(self, call: Call, event_type: str, **params: Any) -> None:
        self.event(call, event_type, {"call_id": call.call_id, "node_id": call.node_id, **params})

    def send_state(self, call: Call, state: str, **extra: Any) -> None:
        """Move ``call`` to ``state`` and tell its app now."""
        call.state = state
        if state == ANSWERED:
            self._answered.add(call.call_id)
        params = {**call.base(), "call_state": state, **extra}
        if call.end_reason is not None and state in (ENDING, ENDED):
            params["end_reason"] = call.end_reason
        self.event(call, STATE, params)

    def answer(self, call: Call) -> None:
        """The app answered: ``answered`` follows its result, and the far end's script runs from then."""
        if call.state in (CREATED, RINGING):
            call.state = ANSWERED  # at once: the ring-out must not end it meanwhile
            self._answered.add(call.call_id)
            self.later(EVENT_GAP, lambda: self.send_state(call, ANSWERED) if call.state == ANSWERED else None)
            self.far_end_hangs_up(call)

    def far_end_hangs_up(self, call: Call) -> None:
        """Hang the answered call up from the far end after its script's ``hangup_after``, if it has one."""
        after = call.far_end.hangup_after
        if after is not None:
            self.later(after, lambda: self.end(call, "hangup") if call.live else None)

    def limit(self, call: Call, minutes: float | None) -> None:
        """A verb's ``max_duration``: the answered call ends ``minutes`` simulated minutes on (``max_duration``)."""
        if minutes:
            self.later(minutes * 60, lambda: self.end(call, MAX_DURATION) if call.live else None)

    def start_action(self, call: Call, control_id: str, kind: str, on_end: Callable[[Action, str], None]) -> Action:
        old = call.actions.get(control_id)
        if old is not None:
            self.finish(old)
        elif len(call.actions) >= MAX_ACTIONS:
            self.finish(next(iter(call.actions.values())))  # the oldest, quietly: bounded memory per call
        action = Action(call, control_id, kind, on_end)
        call.actions[control_id] = action
        return action

    def timer(self, action: Action, delay: float, step: Callable[[Action], None]) -> None:
        """Run ``step(action)`` after ``delay`` simulated seconds unless the action is paused, stopped or done."""
        action.epoch += 1
        epoch = action.epoch
        action.step = step
        action.due = self.core.clock() + max(delay, 0.0) / self.core.speed

        def fire() -> None:
            if action.epoch == epoch and not action.done and action.call.live:
                step(action)

        self.later(delay, fire)

    def pause(self, action: Action) -> None:
        if action.left is None and not action.done:
            action.left = max(0.0, action.due - self.core.clock()) * self.core.speed
            action.epoch += 1

    def resume(self, action: Action) -> None:
        left, action.left = action.left, None
        if left is not None and action.step is not None and not action.done:
            self.timer(action, left, action.step)

    def finish(self, action: Action) -> None:
        """The action is over (its terminal event sent): nothing of it runs any more."""
        action.done = True
        action.epoch += 1
        if action.call.actions.get(action.control_id) is action:
            del action.call.actions[action.control_id]

    def stop(self, action: Action, why: str = "stop") -> None:
        """End a running action now with its terminal event."""
        if not action.done:
            action.on_end(action, why)
            self.finish(action)

    def end(self, call: Call, reason: str) -> None:
        """End ``call`` now: its running actions end first, a bridge or a connect under way goes down, then
        ``ending`` and ``ended`` (``reason``). Called from timers; a verb's handler goes through :meth:`hang_up`."""
        if call.end_reason is not None:
            return
        call.end_reason = reason
        for action in list(call.actions.values()):
            self.stop(action, "end")
        ringing = call.ringing
        if ringing is not None and not ringing.cancelled:
            ringing.cancelled = True
            for leg in ringing.legs:
                if leg.live:
                    self.end(leg, "cancel")
            self.call_event(call, CONNECT_EVENT, connect_state="failed", failed_reason="cancel")
        self.unbridge(call)
        call.last_session = call.session or call.last_session
        self.send_state(call, ENDING)
        if call.inbound is not None:
            call.inbound.ended = True

        def ended() -> None:
            self.send_state(call, ENDED)

        self.later(EVENT_GAP, ended)

    def hang_up(self, call: Call, reason: str) -> None:
        """A verb ends the call: it is gone for later verbs at once, its events follow the reply."""
        if call.live:
            call.state = ENDING
            self.later(EVENT_GAP, lambda: self.end(call, reason))

    def unbridge(self, call: Call) -> None:
        """Take down the bridge ``call`` is in, if any: ``disconnected`` to the parent side, the other leg ends."""
        other = call.bridge
        if other is None:
            return
        call.bridge = other.bridge = None
        parent, leg = (call, other) if other.parent is call else (other, call)
        self.call_event(parent, CONNECT_EVENT, connect_state="disconnected", peer=leg.peer_info())
        if leg.live:
            self.end(leg, "hangup")

    def ring(
        self,
        groups: list[list[Call]],
        on_answer: Callable[[Call], None],
        on_fail: Callable[[str], None],
        on_created: Callable[[Call], None] | None = None,
    ) -> Ringing:
        """Dial ``groups`` of legs: the legs of a group at once, the groups in turn. Each leg goes ``created``,
        ``ringing``, then its far end decides (answers, busy, declines, never answers: rings out); the first leg
        of a group that answers wins (``on_answer``) and the others still ringing end (``cancel``); when every
        group failed, ``on_fail(reason)`` with the reason of the last leg to end."""
        ringing = Ringing()

        def start(index: int) -> None:
            if ringing.cancelled:
                return
            if index >= len(groups):
                ringing.cancelled = True
                on_fail(last_reason)
                return
            legs = groups[index]
            ringing.legs = legs
            for leg in legs:
                self._remember(leg)
                self.send_state(leg, CREATED, **({"created_by": "dial"} if leg.parent is None else {}))
                if on_created is not None:
                    on_created(leg)
            self.later(RING_GAP, lambda: ring_legs(index, legs))

        last_reason = "noAnswer"

        def ring_legs(index: int, legs: list[Call]) -> None:
            nonlocal last_reason
            if ringing.cancelled:
                return
            outcomes: list[tuple[float, str, Call]] = []
            for leg in legs:
                self.send_state(leg, RINGING)
                fe, timeout = leg.far_end, _timeout(leg.device)
                if fe.answer == "answer" and fe.answer_after <= timeout:
                    outcomes.append((fe.answer_after, "answer", leg))
                elif fe.answer in ("busy", "decline") and fe.answer_after <= timeout:
                    outcomes.append((fe.answer_after, fe.answer, leg))
                else:
                    outcomes.append((timeout, "noAnswer", leg))
            winners = [o for o in outcomes if o[1] == "answer"]
            decided = min((o[0] for o in winners), default=max(o[0] for o in outcomes))
            for at, what, leg in outcomes:
                if what != "answer" and at <= decided:
                    self._give_up(ringing, leg, what, at)

            def decide() -> None:
                nonlocal last_reason
                if ringing.cancelled:
                    return
                winner = next((leg for at, _, leg in sorted(winners, key=lambda o: o[0]) if at == decided), None)
                for _, what, leg in outcomes:
                    if leg is not winner and leg.live:
                        self.end(leg, "cancel" if winner is not None else what)
                if winner is None:
                    last_reason = max(outcomes, key=lambda o: o[0])[1]
                    self._once_ended(legs, lambda: start(index + 1))
                    return
                ringing.cancelled = True
                self.send_state(winner, ANSWERED)
                self.far_end_hangs_up(winner)
                on_answer(winner)

            self.later(decided + 2 * EVENT_GAP, decide)  # after the legs that gave up have ended

        start(0)
        return ringing

    def _once_ended(self, legs: list[Call], then: Callable[[], None]) -> None:
        """Run ``then`` once every leg has sent ``ended``: a group's failure (the next group dialled, or the dial
        failed) always follows its legs' ends, however late a loaded machine runs their timers."""
        if all(leg.state == ENDED for leg in legs):
            then()
        else:
            self.later(EVENT_GAP, lambda: self._once_ended(legs, then))

    def _give_up(self, ringing: Ringing, leg: Call, reason: str, after: float) -> None:
        """A dialled leg's far end is busy, declines or never answers: the leg ends ``after`` seconds on."""

        def end() -> None:
            if leg.live and not ringing.cancelled:
                self.end(leg, reason)

        self.later(after, end)

    def new_recording(self) -> tuple[str, str]:
        """An id for a recording about to be made, and the URL the control plane will serve it at."""
        rec_id = self.new_id()
        return rec_id, f"{self.core.control_url}/relay/recordings/{rec_id}.wav"

    def keep_recording(self, rec_id: str, duration: float) -> None:
        """The recording is done: its audio (``duration`` seconds) can be fetched now."""
        _keep(self._recordings, rec_id, duration)

    def new_fax(self) -> tuple[str, str]:
        """An id for a fax about to be received, and the URL the control plane will serve its document at."""
        fax_id = self.new_id()
        return fax_id, f"{self.core.control_url}/relay/faxes/{fax_id}.pdf"

    def keep_fax(self, fax_id: str, pages: int) -> None:
        """The fax is received: its document (``pages`` pages) can be fetched now."""
        _keep(self._faxes, fax_id, pages)

    def fax(self, fax_id: str) -> int | None:
        """The page count of a fax ``calling.receive_fax`` received, if still kept."""
        return self._faxes.get(fax_id)

    def own(self, leg: Call, owner: Session) -> None:
        """``owner`` dialled ``leg``: its app controls it."""
        leg.owner = leg.last_session = owner

    # -- routing's hooks -------------------------------------------------------------------------------------

    def ring_out(self, inbound: InboundCall) -> bool:
        """The ring timeout of an inbound call routing holds: True when the call is one of ours (answered calls
        do not ring out; one still ringing ends ``noAnswer``), False to let routing end it its own way."""
        call = self._calls.get(inbound.call_id)
        if call is None or call.inbound is not inbound:
            return False
        if call.state in (CREATED, RINGING):
            if inbound.holder is None:
                self.core.log(f"call {inbound.call_id!r} rang out with nobody holding it")
            self.end(call, "noAnswer")
        return True

    def answered_call(self, session: Session, call_id: str) -> bool:
        """Whether ``call_id`` is a call of ours that ``session`` holds and has answered (it cannot be passed)."""
        call = self._calls.get(call_id)
        return call is not None and call.session is session and call.state == ANSWERED

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def _adopt(self, inbound: InboundCall) -> Call:
        """A call routing offered without a script (``Emulator.offer_call``): taken over with the default far end
        when its holder first acts on it."""
        params = inbound.receive["params"]
        device = params.get("device", {}).get("params", {})
        call = Call(
            inbound.call_id,
            self.core.node_id,
            "inbound",
            str(device.get("from_number", "")),
            str(device.get("to_number", "")),
            self.core.far_ends.default,
            context=inbound.context,
        )
        call.inbound = inbound
        call.last_session = inbound.holder
        self._remember(call)
        return call

    def _remember(self, call: Call) -> None:
        calls = self._calls
        calls[call.call_id] = call
        if len(calls) > MAX_CALLS:
            old, _ = calls.popitem(last=False)
            self._answered.discard(old)

    def _status(self, call: Call) -> dict[str, Any]:
        session = call.session or call.last_session
        return {
            "call_id": call.call_id,
            "direction": call.direction,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "context": call.context,
            "state": call.state,
            "answered": call.call_id in self._answered,
            "end_reason": call.end_reason,
            "session_id": session.sessionid if session is not None else None,
        }


def _keep(files: OrderedDict[str, T], file_id: str, value: T) -> None:
    """Keep what a file served by the control plane is made from; the oldest go past :data:`MAX_RECORDINGS`."""
    files[file_id] = value
    if len(files) > MAX_RECORDINGS:
        files.popitem(last=False)


def _timeout(device: dict[str, Any]) -> float:
    """How long a dialled device rings (its ``params.timeout``), else :data:`DIAL_TIMEOUT`."""
    params = device.get("params")
    value = params.get("timeout") if isinstance(params, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DIAL_TIMEOUT
