"""The lifecycles of PROTOCOL.md section 9 as data: the states a call, an action and a message pass through.

One copy of the fact, read by everything that needs it: the timeline judges a log's order against it, the summary
tells from it when a call or message is final, the pretty line which states are failures, and the emulator's
flows walk it to make traffic. Only the standard library, so any layer may read it.

Two shapes, because the protocol has two:

- `Progression`: states that only move forward (a call, a message). A later state may skip ahead (a call may end
  without ringing); nothing follows the last step.
- `Lifecycle`: an action's states as a small graph (play may pause and play again). Each state lists the states
  it may follow, ``""`` meaning "the first event of this action"; states it does not list are not judged.

The API is stable: `CALL` (with `ANSWERED`, `ENDED`, `END_REASONS`), `MESSAGE`, `INBOUND_MESSAGE`, `ACTIONS` (by
event type), `DIAL`, `COLLECT_RESULTS`, `ACTION_FAILED`, and the two classes with their fields and methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = [
    "ACTIONS",
    "ACTION_FAILED",
    "ANSWERED",
    "CALL",
    "COLLECT_RESULTS",
    "DIAL",
    "ENDED",
    "END_REASONS",
    "INBOUND_MESSAGE",
    "MESSAGE",
    "Lifecycle",
    "Progression",
]

ACTION_FAILED: Final = ("error", "failed")
"""The states by which any action reports that it failed. A tuple, not a set: a state read off the wire may be
unhashable (a dict), and ``in`` a tuple compares where ``in`` a set would raise."""


@dataclass(frozen=True)
class Progression:
    """States that only move forward, reported in ``params[key]`` by the events of ``event_types``.

    ``steps`` are in order; the states of one step are alternatives (a message ends delivered, undelivered or
    failed). ``failed`` are the values of ``params[failed_key]`` that report a failure.
    """

    name: str
    event_types: tuple[str, ...]
    key: str
    steps: tuple[tuple[str, ...], ...]
    failed_key: str
    failed: tuple[str, ...]
    rank: Mapping[str, int] = field(init=False, repr=False, compare=False)
    """Each state's step number: a state may follow any state of a lower rank."""

    def __post_init__(self) -> None:
        rank = {state: n for n, step in enumerate(self.steps) for state in step}
        object.__setattr__(self, "rank", MappingProxyType(rank))

    @property
    def states(self) -> tuple[str, ...]:
        """Every state, in order."""
        return tuple(state for step in self.steps for state in step)

    @property
    def final(self) -> tuple[str, ...]:
        """The states of the last step: nothing follows them."""
        return self.steps[-1]

    @property
    def last(self) -> int:
        """The rank of the final states."""
        return len(self.steps) - 1


@dataclass(frozen=True)
class Lifecycle:
    """One action's states, reported in ``params[key]`` by ``event_type`` events (per ``control_id``).

    ``follows`` maps each judged state to the states it may follow (``""``: the action's first event);
    ``start`` is the state an action normally starts in, ``final`` the states that end it, ``failed`` the
    states that report a failure.
    """

    name: str
    event_type: str
    key: str
    start: str
    follows: Mapping[str, frozenset[str]]
    final: tuple[str, ...]
    failed: tuple[str, ...] = ACTION_FAILED

    def may_follow(self, previous: str, state: str) -> bool | None:
        """Whether ``state`` may come after ``previous`` (``""``: nothing yet); None when ``state`` is not judged."""
        before = self.follows.get(state)
        return None if before is None else previous in before

    def next_states(self, state: str) -> tuple[str, ...]:
        """The states that may come after ``state`` (``""``: the first event), in the order they are listed."""
        if state in self.final:
            return ()
        return tuple(after for after, before in self.follows.items() if state in before)


ANSWERED: Final = "answered"
"""The call state from which a call is up: its duration counts from here."""
ENDED: Final = "ended"
"""A call's last state."""

CALL: Final = Progression(
    name="call",
    event_types=("calling.call.receive", "calling.call.state"),
    key="call_state",
    steps=(("created",), ("ringing",), (ANSWERED,), ("ending",), (ENDED,)),
    failed_key="end_reason",
    failed=("error",),
)
"""A call leg: an inbound one starts with ``calling.call.receive`` (created), a dialled one with a
``calling.call.state`` created event carrying its dial's ``tag`` and ``created_by: dial``."""

END_REASONS: Final = (
    "hangup",
    "cancel",
    "busy",
    "noAnswer",
    "decline",
    "error",
    "abandoned",
    "max_duration",
    "not_found",
)
"""The ``end_reason`` values of a call's ``ending`` and ``ended`` states."""

MESSAGE: Final = Progression(
    name="message",
    event_types=("messaging.state",),
    key="message_state",
    steps=(("queued",), ("initiated",), ("sent",), ("delivered", "undelivered", "failed")),
    failed_key="message_state",
    failed=("undelivered", "failed"),
)
"""An outbound message; its failures (which may come straight after ``queued`` or ``initiated``) carry a
``reason``."""

INBOUND_MESSAGE: Final = Progression(
    name="inbound message",
    event_types=("messaging.receive",),
    key="message_state",
    steps=(("received",),),
    failed_key="message_state",
    failed=(),
)
"""An inbound message: one ``messaging.receive`` event is its whole story."""


def _graph(**follows: tuple[str, ...]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({state: frozenset(before) for state, before in follows.items()})


def _simple(name: str, running: str) -> Lifecycle:
    """An action that runs, then finishes: tap, stream, transcribe, echo."""
    follows = _graph(**{running: ("",), "finished": (running,)})
    return Lifecycle(name, f"calling.call.{name}", "state", running, follows, ("finished",))


_LIFECYCLES: Final = (
    Lifecycle(
        "play",
        "calling.call.play",
        "state",
        "playing",
        _graph(
            playing=("", "paused"), paused=("playing",), finished=("playing", "paused"), error=("", "playing", "paused")
        ),
        ("finished", "error"),
    ),
    Lifecycle(
        "record",
        "calling.call.record",
        "state",
        "recording",
        _graph(
            recording=("", "paused"),
            paused=("recording",),
            finished=("recording", "paused"),
            no_input=("recording", "paused"),
        ),
        ("finished", "no_input"),
    ),
    Lifecycle(
        "connect",
        "calling.call.connect",
        "connect_state",
        "connecting",
        # A leg may be connected again after it was disconnected, or after a connect failed.
        _graph(
            connecting=("", "disconnected", "failed"),
            connected=("connecting",),
            disconnected=("connected",),
            failed=("", "connecting"),
        ),
        ("disconnected", "failed"),
    ),
    _simple("tap", "tapping"),
    _simple("stream", "streaming"),
    _simple("transcribe", "transcribing"),
    _simple("echo", "echoing"),
    Lifecycle("hold", "calling.call.hold", "state", "hold", _graph(hold=("", "unhold"), unhold=("hold",)), ("unhold",)),
    Lifecycle(
        "dial",
        "calling.call.dial",
        "dial_state",
        "dialing",
        # Only the winning call's answered dial carries ``call`` (with ``dial_winner: true``); a failed one has
        # no call at all, only the tag of the ``created`` state that began it.
        _graph(dialing=("",), answered=("", "dialing"), failed=("", "dialing")),
        ("answered", "failed"),
    ),
    # Reported with a state and the failure states, but not ordered here: a digits send, a SIP REFER and a
    # payment each report one outcome.
    Lifecycle("send_digits", "calling.call.send_digits", "state", "", _graph(), ()),
    Lifecycle("refer", "calling.call.refer", "state", "", _graph(), ()),
    Lifecycle("pay", "calling.call.pay", "state", "", _graph(), ()),
)

ACTIONS: Final[Mapping[str, Lifecycle]] = MappingProxyType({lc.event_type: lc for lc in _LIFECYCLES})
"""Every action with a state, by event type. Those with an empty ``follows`` are not ordered, only their failures
known. Queue is left out: real dequeue events carry ``control_id: null`` and leave events a new one."""

DIAL: Final = ACTIONS["calling.call.dial"]

COLLECT_RESULTS: Final = ("digit", "speech", "no_input", "no_match", "error")
"""The ``result.type`` of the one event a collect reports (``final: false`` marks the partial results of a
continuous collect); ``error`` is its failure."""
