"""Deterministic, realistic RELAY event payloads for demo traffic and benchmarks.

`DemoTraffic` plays many call and message lifecycles at once (PROTOCOL.md section 9) and yields the
payload of each `signalwire.event` (the frame's `params`) in timestamp order. The local emulator feeds it
to clients so `relay tail --demo` shows something on a machine with no account; benchmarks write millions
of them to JSONL.

The flows are public generators of `Step` tuples (delay after the flow's previous event, event type, params,
top-level context): `inbound_call`, `outbound_call`, `inbound_message`, `outbound_message`, `talk` and
`action`, each walking the states of :mod:`relay_cli.lifecycles`. `DemoTraffic` is random flows on a timed
outbox (:mod:`relay_cli.emulator.outbox`, the same heap that times the emulator's own frames) in simulated time:
the server paces what it draws at ``--rate`` (or as fast as the client reads) and stamps each event when it sends
it, so the outbox's times decide the order, never a wait. One flow on its own can go on a session's real-time
outbox (``EmulatorCore.schedule_flow``).

Everything random comes from one private `random.Random(seed)`, including every UUID, so one seed always gives
one stream. Only the standard library is used and nothing here does I/O, so the module is cheap to import.
"""

from __future__ import annotations

import random
import time
from bisect import bisect
from collections.abc import Callable, Generator, Iterator, Sequence
from itertools import accumulate, islice
from typing import Any

from relay_cli.emulator.outbox import Outbox
from relay_cli.lifecycles import ACTIONS, CALL, DIAL, INBOUND_MESSAGE, MESSAGE

__all__ = ["ACTION_KINDS", "EVENT_TYPES", "Action", "Call", "DemoTraffic", "Flow", "Step", "fax_finished"]

EVENT_TYPES: tuple[str, ...] = (
    "calling.call.state",
    "calling.call.receive",
    "calling.call.play",
    "calling.call.record",
    "calling.call.collect",
    "calling.call.connect",
    "calling.call.detect",
    "calling.call.fax",
    "calling.call.tap",
    "calling.call.stream",
    "calling.call.send_digits",
    "calling.call.dial",
    "calling.call.refer",
    "calling.call.denoise",
    "calling.call.pay",
    "calling.call.queue",
    "calling.call.echo",
    "calling.call.transcribe",
    "calling.call.hold",
    "calling.conference",
    "calling.error",
    "messaging.receive",
    "messaging.state",
)

# (delay in microseconds after the flow's previous event, event_type, params, top-level context or None)
Step = tuple[int, str, dict[str, Any], str | None]
Flow = Generator[Step, None, None]
# An action yields its events and returns True when it ended the call (a successful SIP REFER).
Action = Generator[Step, None, bool]

_RECEIVE, _STATE = CALL.event_types
CREATED, RINGING, ANSWERED, ENDING, ENDED = CALL.states
_HOST = "example.signalwire.com"
# Outbound messages need some context; a client with no contexts of its own still names one when sending.
_SEND_CONTEXT = "default"

# The states the flows walk, from the lifecycle data (PROTOCOL.md section 9).
_DIAL_ANSWERED, _DIAL_FAILED = DIAL.final
_PLAYING, _RECORDING, _CONNECTING, _TAPPING, _STREAMING, _ECHOING, _TRANSCRIBING, _HOLD = (
    ACTIONS[f"calling.call.{name}"].start
    for name in ("play", "record", "connect", "tap", "stream", "echo", "transcribe", "hold")
)
_MESSAGE_STATE = MESSAGE.event_types[0]
_QUEUED, _INITIATED, _SENT = (step[0] for step in MESSAGE.steps[:3])
_DELIVERED_STATE, _UNDELIVERED_STATE, _FAILED_STATE = MESSAGE.final
_DELIVERED: tuple[str, ...] = (_INITIATED, _SENT, _DELIVERED_STATE)
_UNDELIVERED: tuple[str, ...] = (_INITIATED, _SENT, _UNDELIVERED_STATE)
_FAILED: tuple[str, ...] = (_INITIATED, _FAILED_STATE)
_FAILED_AT_ONCE: tuple[str, ...] = (_FAILED_STATE,)

ACTION_KINDS: tuple[str, ...] = (
    "play",
    "collect",
    "record",
    "connect",
    "detect",
    "fax",
    "tap",
    "stream",
    "send_digits",
    "refer",
    "denoise",
    "pay",
    "queue",
    "echo",
    "transcribe",
    "hold",
    "conference",
    "error",
)
_ACTION_WEIGHTS: tuple[float, ...] = (
    30,
    20,
    14,
    10,
    3,
    1.5,
    2,
    2,
    2,
    1,
    1.5,
    1,
    2,
    1,
    1.5,
    2,
    2,
    0.7,
)
_ACTION_CUM: tuple[float, ...] = tuple(accumulate(_ACTION_WEIGHTS))
_ACTION_TOTAL = _ACTION_CUM[-1]
_ACTION_COUNTS = (0, 1, 1, 2, 2, 2, 3, 3, 4, 5)

_V4_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_V4_SET = (0x4 << 76) | (0x2 << 62)

_REGIONS = ("us-east", "us-west", "us-central", "eu-west")
_MESSAGE_BODIES = (
    "Hi! Is the store open today?",
    "Your verification code is 482913",
    "Running 10 minutes late, sorry",
    "STOP",
    "Thanks, see you tomorrow",
    "Can you call me back when you get a chance?",
    "Reminder: your appointment is on Friday at 3:30 PM. Reply C to confirm or R to reschedule.",
    "Order #10293 has shipped and should arrive within 2 business days. Track it any time from your account.",
    "yes",
    "What time do you close?",
)
_FAIL_REASONS = ("Unreachable destination", "Carrier rejected", "Message filtered", "Unknown error")
_SPEECH = ("yes", "no", "sales", "support", "billing please", "talk to an agent", "one two three four")
_QUEUES = ("support_queue", "sales_queue", "billing")
_CONFERENCES = ("daily-standup", "support-bridge", "sales-sync", "my_conference")
_CALL_ERRORS = (
    ("500", "Internal server error"),
    ("503", "Media service unavailable"),
    ("408", "Request timeout"),
)
_CODECS = ("PCMU", "PCMA", "OPUS")
_ENDED_KEPT = 1024
# seconds between one outbound message state and the next
_MESSAGE_GAPS: dict[str, tuple[float, float]] = {
    _INITIATED: (0.02, 0.3),
    _SENT: (0.3, 2),
    _DELIVERED_STATE: (1, 8),
    _UNDELIVERED_STATE: (2, 30),
    _FAILED_STATE: (0.1, 2),
}


class Call:
    """One call leg: what every event about it repeats."""

    __slots__ = ("call_id", "direction", "frm", "node_id", "parent", "tag", "to")

    def __init__(
        self,
        call_id: str,
        node_id: str,
        direction: str,
        frm: str,
        to: str,
        *,
        tag: str = "",
        parent: Call | None = None,
    ) -> None:
        self.call_id = call_id
        self.node_id = node_id
        self.direction = direction
        self.frm = frm
        self.to = to
        self.tag = tag
        self.parent = parent

    def device(self) -> dict[str, Any]:
        return {"type": "phone", "params": {"from_number": self.frm, "to_number": self.to}}

    def state(self, call_state: str, end_reason: str = "") -> dict[str, Any]:
        """Hot path (half of all demo events): :meth:`device` is written inline."""
        p: dict[str, Any] = {
            "call_state": call_state,
            "direction": self.direction,
            "device": {"type": "phone", "params": {"from_number": self.frm, "to_number": self.to}},
            "call_id": self.call_id,
            "node_id": self.node_id,
        }
        if self.tag:
            p["tag"] = self.tag
        if self.parent is not None:
            p["peer"] = {"call_id": self.parent.call_id, "node_id": self.parent.node_id}
        if end_reason:
            p["end_reason"] = end_reason
        return p


class DemoTraffic:
    """Interleaved call and message lifecycles as an endless stream of payloads.

    The instance *is* the stream: iterating it and `take()` both continue from where the last read
    stopped, so a consumer can pull events in batches. Build a new instance with the same seed to replay
    from the start.

    Flows run concurrently in simulated time: each knows when its next event is due and the stream always
    emits the earliest, so events of concurrent flows interleave while timestamps stay non-decreasing and
    every gap inside one call stays realistic (sub-second ringing to answered, seconds of playback, ...).

    :attr:`inbound_calls` and :attr:`ended_inbound_calls` say which inbound calls the stream has under way and
    which it ended lately, at no cost per event, so a server can route them (``calling.pass``).
    """

    def __init__(
        self,
        *,
        contexts: Sequence[str] = ("default",),
        seed: int | None = None,
        project_id: str | None = None,
        space_id: str | None = None,
        event_channel: str = "",
        start: float | None = None,
        concurrency: int = 8,
    ) -> None:
        if isinstance(contexts, str):
            raise TypeError("contexts must be a sequence of context names, not one string")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._rng = random.Random(seed)
        self._contexts: tuple[str, ...] = tuple(contexts)
        self.project_id: str = project_id if project_id is not None else self._uuid()
        self.space_id: str = space_id if space_id is not None else self._uuid()
        if not event_channel:
            sig = f"{self._rng.getrandbits(256):064x}"
            event_channel = f"signalwire_{sig}_{self._uuid()}_{self.project_id}"
        self.event_channel: str = event_channel
        self._start_us = round((time.time() if start is None else start) * 1_000_000)
        self._concurrency = concurrency
        self._nodes = tuple(f"{self._uuid()}@{_REGIONS[i % len(_REGIONS)]}" for i in range(3))
        self._own_numbers = tuple(self._phone() for _ in range(3))
        # Every action kind once early on (in seeded order), so a short demo already shows the rare ones.
        self._tour = list(ACTION_KINDS)
        self._rng.shuffle(self._tour)
        self._actions: dict[str, Callable[[Call], Action]] = {
            "play": self._play,
            "collect": self._collect,
            "record": self._record,
            "connect": self._connect,
            "detect": self._detect,
            "fax": self._fax,
            "tap": self._tap,
            "stream": self._stream,
            "send_digits": self._send_digits,
            "refer": self._refer,
            "denoise": self._denoise,
            "pay": self._pay,
            "queue": self._queue,
            "echo": self._echo,
            "transcribe": self._transcribe,
            "hold": self._hold,
            "conference": self._conference,
            "error": self._error,
        }
        self.inbound_calls: dict[str, dict[str, Any]] = {}
        """Inbound calls under way (their ``calling.call.receive`` may still be due): call id → its params."""
        self.ended_inbound_calls: dict[str, None] = {}
        """The ids of the last ``_ENDED_KEPT`` inbound calls that ended, oldest first."""
        self._stream_iter = self._run()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._stream_iter

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next `n` payloads of the stream."""
        if n < 0:
            raise ValueError("n must not be negative")
        return list(islice(self._stream_iter, n))

    # -- scheduling ---------------------------------------------------------------------------------------

    def _run(self) -> Iterator[dict[str, Any]]:
        """Hot path: the emulator's per-event cost. Random flows on an outbox in simulated microseconds; the
        earliest step is always next, and a flow that ends is replaced by a new random one after a pause."""
        rng = self._rng
        channel, project, space = self.event_channel, self.project_id, self.space_id
        outbox: Outbox[tuple[Step, Flow]] = Outbox()
        due: float  # whole microseconds, so the timestamps are exact
        for n in range(self._concurrency):
            due = self._start_us + (0 if n == 0 else int(rng.random() * 2_000_000))
            flow = self.random_flow()
            outbox.put(due, (next(flow), flow))
        put_pop_first = outbox.put_pop_first
        due, ((_, event_type, params, context), flow) = outbox.pop_first()
        while True:
            if context is None:
                payload = {
                    "event_type": event_type,
                    "event_channel": channel,
                    "timestamp": due / 1_000_000,
                    "project_id": project,
                    "space_id": space,
                    "params": params,
                }
            else:
                payload = {
                    "event_type": event_type,
                    "event_channel": channel,
                    "timestamp": due / 1_000_000,
                    "project_id": project,
                    "space_id": space,
                    "context": context,
                    "params": params,
                }
            step = next(flow, None)
            if step is None:
                flow = self.random_flow()
                step = next(flow)
                due += int(rng.expovariate(1.0) * 800_000) + 1_000
            else:
                due += step[0]
            due, _, ((_, event_type, params, context), flow) = put_pop_first(due, (step, flow))
            yield payload

    def random_flow(self) -> Flow:
        r = self._rng.random
        has_contexts = bool(self._contexts)
        if r() < 0.7:
            if has_contexts and r() < 0.55:
                return self.inbound_call()
            return self.outbound_call()
        if has_contexts and r() < 0.5:
            return self.inbound_message()
        return self.outbound_message()

    # -- random values ------------------------------------------------------------------------------------

    def _uuid(self) -> str:
        h = f"{(self._rng.getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _phone(self) -> str:
        r = self._rng.random
        area = int(r() * 789) + 201
        if area % 100 == 11:  # N11 codes are service numbers, not area codes
            area += 1
        return f"+1{area}{int(r() * 8_000_000) + 2_000_000}"

    def _us(self, lo: float, hi: float) -> int:
        """A delay between `lo` and `hi` seconds, in microseconds."""
        return int((lo + (hi - lo) * self._rng.random()) * 1_000_000)

    def _pick(self, seq: Sequence[str]) -> str:
        return seq[int(self._rng.random() * len(seq))]

    def _node(self) -> str:
        return self._pick(self._nodes)

    def _context(self) -> str:
        return self._pick(self._contexts) if self._contexts else _SEND_CONTEXT

    def _control(self, c: Call, **extra: Any) -> dict[str, Any]:
        return {"call_id": c.call_id, "node_id": c.node_id, **extra}

    # -- call flows ---------------------------------------------------------------------------------------

    def inbound_call(self) -> Flow:
        r = self._rng.random
        context = self._context()
        c = Call(self._uuid(), self._node(), "inbound", self._phone(), self._pick(self._own_numbers))
        receive = c.state(CREATED)
        receive["context"] = context
        receive["segment_id"] = c.call_id
        self.inbound_calls[c.call_id] = receive
        try:
            yield 0, _RECEIVE, receive, context
            yield self._us(0.005, 0.08), _STATE, c.state(RINGING), None
            if r() < 0.12:
                reason = "noAnswer" if r() < 0.5 else self._pick(("cancel", "cancel", "busy"))
                ring = self._us(15, 30) if reason == "noAnswer" else self._us(1, 12)
                yield ring, _STATE, c.state(ENDING, reason), None
                yield self._us(0.02, 0.3), _STATE, c.state(ENDED, reason), None
                return
            yield self._us(0.1, 0.9), _STATE, c.state(ANSWERED), None
            yield from self.talk(c)
        finally:
            # Runs as the stream takes the call's last event, before that event is yielded.
            del self.inbound_calls[c.call_id]
            ended = self.ended_inbound_calls
            ended[c.call_id] = None
            if len(ended) > _ENDED_KEPT:
                del ended[next(iter(ended))]

    def outbound_call(self) -> Flow:
        r = self._rng.random
        tag = self._uuid()
        own = self._pick(self._own_numbers)
        c = Call(self._uuid(), self._node(), "outbound", own, self._phone(), tag=tag)
        created = c.state(CREATED)
        created["created_by"] = "dial"
        yield 0, _STATE, created, None
        dialing = {"dial_state": DIAL.start, "node_id": c.node_id, "tag": tag}
        yield self._us(0.002, 0.03), DIAL.event_type, dialing, None
        yield self._us(0.2, 1.5), _STATE, c.state(RINGING), None
        if r() < 0.2:
            reason = self._pick(("noAnswer", "noAnswer", "busy", "decline", "error"))
            ring = self._us(20, 30) if reason == "noAnswer" else self._us(0.5, 8)
            yield ring, _STATE, c.state(ENDING, reason), None
            yield self._us(0.02, 0.3), _STATE, c.state(ENDED, reason), None
            failed = {"dial_state": _DIAL_FAILED, "node_id": c.node_id, "tag": tag}
            yield self._us(0.001, 0.02), DIAL.event_type, failed, None
            return
        yield self._us(1, 12), _STATE, c.state(ANSWERED), None
        winner: dict[str, Any] = {"call_id": c.call_id, "node_id": c.node_id, "tag": tag}
        winner["device"] = c.device()
        winner["dial_winner"] = True
        answered = {"dial_state": _DIAL_ANSWERED, "node_id": c.node_id, "tag": tag, "call": winner}
        yield self._us(0.001, 0.02), DIAL.event_type, answered, None
        yield from self.talk(c)

    def talk(self, c: Call) -> Flow:
        """An answered call: some actions, then the hang-up."""
        r = self._rng.random
        for _ in range(_ACTION_COUNTS[int(r() * len(_ACTION_COUNTS))]):
            if self._tour and r() < 0.6:
                kind = self._tour.pop()
            else:
                kind = ACTION_KINDS[bisect(_ACTION_CUM, r() * _ACTION_TOTAL)]
            if (yield from self.action(kind, c)):
                break
        x = r()
        reason = "hangup" if x < 0.9 else self._pick(("max_duration", "error", "abandoned", "hangup"))
        yield self._us(0.1, 3), _STATE, c.state(ENDING, reason), None
        yield self._us(0.02, 0.3), _STATE, c.state(ENDED, reason), None

    # -- call actions (each starts a short gap after the previous event) ----------------------------------

    def action(self, kind: str, c: Call) -> Action:
        """The events of one action of ``kind`` (one of :data:`ACTION_KINDS`) on the answered call ``c``; its
        return value says whether the action ended the call (a successful SIP REFER)."""
        return self._actions[kind](c)

    def _play(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        ev = "calling.call.play"
        yield self._us(0.05, 0.6), ev, self._control(c, control_id=cid, state=_PLAYING), None
        if r() < 0.05:
            yield self._us(1, 4), ev, self._control(c, control_id=cid, state="paused"), None
            yield self._us(1, 6), ev, self._control(c, control_id=cid, state=_PLAYING), None
        end = "error" if r() < 0.05 else "finished"
        gap = self._us(0.05, 0.5) if end == "error" else self._us(1.5, 20)
        yield gap, ev, self._control(c, control_id=cid, state=end), None
        return False

    def _collect(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        ev = "calling.call.collect"
        x = r()
        done: dict[str, Any] = {}
        if x < 0.45:
            n = int(r() * 4) + 1
            digits = f"{int(r() * 10**n):0{n}d}"
            result: dict[str, Any] = {"type": "digit", "params": {"digits": digits, "terminator": "#"}}
        elif x < 0.75:
            if r() < 0.15:
                partial = {"type": "speech", "params": {"text": self._pick(_SPEECH)[:4], "confidence": 40.0}}
                p = self._control(c, control_id=cid, state="collecting", final=False, result=partial)
                yield self._us(1, 3), ev, p, None
                done = {"state": "finished", "final": True}
            text = self._pick(_SPEECH)
            result = {"type": "speech", "params": {"text": text, "confidence": round(60 + 39 * r(), 1)}}
        elif x < 0.87:
            result = {"type": "no_input"}
        elif x < 0.97:
            result = {"type": "no_match"}
        else:
            result = {"type": "error"}
        yield self._us(2, 10), ev, self._control(c, control_id=cid, **done, result=result), None
        return False

    def _record(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        ev = "calling.call.record"
        yield self._us(0.05, 0.4), ev, self._control(c, control_id=cid, state=_RECORDING), None
        x = r()
        if x < 0.1:
            yield self._us(5, 8), ev, self._control(c, control_id=cid, state="no_input"), None
            return False
        duration = round(2 + 40 * r(), 1)
        gap = int(duration * 1_000_000) + self._us(0.05, 0.5)
        url = f"https://{_HOST}/api/v1/recordings/{self._uuid()}/download"
        size = int(duration * 16_000)
        if x < 0.7:
            record = {"url": url, "duration": duration, "size": size, "format": "wav"}
            yield gap, ev, self._control(c, control_id=cid, state="finished", record=record), None
        else:
            audio = {"audio": {"format": "mp3", "direction": "speak", "stereo": False}}
            p = self._control(c, control_id=cid, state="finished", url=url, duration=int(duration), size=size)
            p["record"] = audio
            yield gap, ev, p, None
        return False

    def _connect(self, c: Call) -> Action:
        r = self._rng.random
        ev = "calling.call.connect"
        own = c.to if c.direction == "inbound" else c.frm
        peer = Call(self._uuid(), c.node_id, "outbound", own, self._phone(), parent=c)

        def peer_info() -> dict[str, Any]:
            return {"call_id": peer.call_id, "node_id": peer.node_id, "device": peer.device()}

        yield self._us(0.05, 0.4), ev, self._control(c, connect_state=_CONNECTING, peer=peer_info()), None
        yield self._us(0.005, 0.05), _STATE, peer.state(CREATED), None
        yield self._us(0.2, 1.5), _STATE, peer.state(RINGING), None
        if r() < 0.15:
            reason = "noAnswer" if r() < 0.6 else "busy"
            yield self._us(3, 25), _STATE, peer.state(ENDING, reason), None
            yield self._us(0.02, 0.2), _STATE, peer.state(ENDED, reason), None
            why = "no_answer" if reason == "noAnswer" else "busy"
            failed = self._control(c, connect_state="failed", failed_reason=why)
            yield self._us(0.005, 0.05), ev, failed, None
            return False
        yield self._us(1, 10), _STATE, peer.state(ANSWERED), None
        yield self._us(0.005, 0.05), ev, self._control(c, connect_state="connected", peer=peer_info()), None
        yield self._us(5, 120), ev, self._control(c, connect_state="disconnected", peer=peer_info()), None
        yield self._us(0.005, 0.05), _STATE, peer.state(ENDING, "hangup"), None
        yield self._us(0.02, 0.2), _STATE, peer.state(ENDED, "hangup"), None
        return False

    def _detect(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        ev = "calling.call.detect"
        x = r()
        if x < 0.6:
            found = self._pick(("HUMAN", "MACHINE", "MACHINE", "UNKNOWN"))
            params: dict[str, Any] = {"event": found}
            if found == "MACHINE":
                params["beep"] = r() < 0.7
            machine = {"type": "machine", "params": params}
            yield self._us(1, 4), ev, self._control(c, control_id=cid, detect=machine), None
            if found == "MACHINE":
                ready = {"type": "machine", "params": {"event": "READY"}}
                yield self._us(2, 10), ev, self._control(c, control_id=cid, detect=ready), None
        elif x < 0.8:
            tone = self._pick(("CED", "CNG"))
            fax = {"type": "fax", "params": {"event": tone}}
            yield self._us(1, 5), ev, self._control(c, control_id=cid, detect=fax), None
        else:
            digits = f"{int(r() * 10)}#"
            digit = {"type": "digit", "params": {"event": digits}}
            yield self._us(1, 6), ev, self._control(c, control_id=cid, detect=digit), None
            done = {"type": "digit", "params": {"event": "finished"}}
            yield self._us(0.5, 3), ev, self._control(c, control_id=cid, detect=done), None
        return False

    def _fax(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        ev = "calling.call.fax"
        direction = "send" if r() < 0.5 else "receive"
        pages = int(r() * 4) + 1
        for page in range(1, pages):
            progress = {"type": "page", "params": {"direction": direction, "pages": page}}
            yield self._us(20, 45), ev, self._control(c, control_id=cid, fax=progress), None
        ok = r() < 0.9
        document = (
            f"https://{_HOST}/api/v1/faxes/{self._uuid()}/download"
            if direction == "receive"
            else "https://example.com/fax_to_send.pdf"
        )
        identity, remote = (c.to, c.frm) if c.direction == "inbound" else (c.frm, c.to)
        # real traffic sometimes sends the page count as a string
        count: int | str = pages if r() < 0.8 else str(pages)
        done = fax_finished(direction, identity, remote, document, ok, "OK" if ok else "Call disconnected", count)
        yield self._us(20, 45), ev, self._control(c, control_id=cid, fax=done), None
        return False

    def _tap(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        direction = self._pick(("listen", "speak", "both"))
        port = 10_000 + 2 * int(r() * 25_000)
        codec = self._pick(_CODECS)
        loose = r() < 0.2

        def body(state: str) -> dict[str, Any]:
            rtp = {
                "addr": "10.20.30.40",
                "port": str(port) if loose else port,
                "codec": codec,
                "ptime": "20" if loose else 20,
            }
            tap = {"type": "audio", "params": {"direction": direction}}
            device = {"type": "rtp", "params": rtp}
            return self._control(c, control_id=cid, state=state, tap=tap, device=device)

        yield self._us(0.05, 0.4), "calling.call.tap", body(_TAPPING), None
        yield self._us(5, 60), "calling.call.tap", body("finished"), None
        return False

    def _stream(self, c: Call) -> Action:
        cid = self._uuid()
        url = f"wss://media.example.com/streams/{c.call_id[:8]}"
        name = f"stream-{cid[:8]}"
        ev = "calling.call.stream"
        started = self._control(c, control_id=cid, state=_STREAMING, url=url, name=name)
        yield self._us(0.05, 0.4), ev, started, None
        yield (
            self._us(5, 90),
            ev,
            self._control(c, control_id=cid, state="finished", url=url, name=name),
            None,
        )
        return False

    def _send_digits(self, c: Call) -> Action:
        done = self._control(c, control_id=self._uuid(), state="finished")
        yield self._us(0.3, 2), "calling.call.send_digits", done, None
        return False

    def _refer(self, c: Call) -> Action:
        target = f"sip:{self._pick(('alice', 'bob', 'support', 'frontdesk'))}@example.com"
        if self._rng.random() < 0.85:
            p = self._control(
                c,
                state="success",
                sip_refer_to=target,
                sip_refer_response_code="202",
                sip_notify_response_code="200",
            )
            yield self._us(0.3, 2), "calling.call.refer", p, None
            return True
        code = self._pick(("403", "488", "603"))
        p = self._control(c, state="error", sip_refer_to=target, sip_refer_response_code=code)
        yield self._us(0.3, 2), "calling.call.refer", p, None
        return False

    def _denoise(self, c: Call) -> Action:
        yield self._us(0.05, 0.4), "calling.call.denoise", self._control(c, denoised=True), None
        if self._rng.random() < 0.7:
            yield self._us(10, 60), "calling.call.denoise", self._control(c, denoised=False), None
        return False

    def _pay(self, c: Call) -> Action:
        ok = self._rng.random() < 0.85
        p = self._control(
            c,
            control_id=self._uuid(),
            state="finished" if ok else "error",
            payment_method="credit-card",
            payment_card_type=self._pick(("visa", "mastercard", "amex")),
            payment_card_number="************1234",
        )
        p["for"] = "payment-completed" if ok else "payment-failed"
        yield self._us(20, 90), "calling.call.pay", p, None
        return False

    def _queue(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        qid = self._uuid()
        name = self._pick(_QUEUES)
        size = int(r() * 5) + 1
        ev = "calling.call.queue"

        def body(status: str, position: int, size: int) -> dict[str, Any]:
            return self._control(
                c,
                status=status,
                id=qid,
                name=name,
                position=position,
                size=size,
                avg_time=int(r() * 120),
                control_id=cid,
            )

        yield self._us(0.05, 0.4), ev, body("enqueue", size, size), None
        if r() < 0.8:
            yield self._us(5, 120), ev, body("dequeue", 0, size - 1), None
        else:
            yield self._us(10, 180), ev, body("leave", size, size - 1), None
        return False

    def _echo(self, c: Call) -> Action:
        yield self._us(0.05, 0.4), "calling.call.echo", self._control(c, state=_ECHOING), None
        yield self._us(3, 20), "calling.call.echo", self._control(c, state="finished"), None
        return False

    def _transcribe(self, c: Call) -> Action:
        r = self._rng.random
        cid = self._uuid()
        ev = "calling.call.transcribe"
        yield self._us(0.05, 0.4), ev, self._control(c, control_id=cid, state=_TRANSCRIBING), None
        duration = round(5 + 55 * r(), 1)
        rec = self._uuid()
        p = self._control(
            c,
            control_id=cid,
            state="finished",
            url=f"https://{_HOST}/api/v1/recordings/{rec}/download",
            recording_id=rec,
            duration=duration,
            size=int(duration * 16_000),
        )
        yield int(duration * 1_000_000) + self._us(0.1, 1), ev, p, None
        return False

    def _hold(self, c: Call) -> Action:
        yield self._us(0.1, 1), "calling.call.hold", self._control(c, state=_HOLD), None
        yield self._us(5, 60), "calling.call.hold", self._control(c, state="unhold"), None
        return False

    def _conference(self, c: Call) -> Action:
        r = self._rng.random
        conf_id = self._uuid()
        name = self._pick(_CONFERENCES)
        size = int(r() * 6) + 1
        ev = "calling.conference"

        def body(status: str, size: int) -> dict[str, Any]:
            return {
                "call_id": c.call_id,
                "name": name,
                "conference_id": conf_id,
                "status": status,
                "size": size,
                "muted": False,
                "hold": False,
            }

        yield self._us(0.2, 1.5), ev, body("participant-join", size), None
        yield self._us(10, 180), ev, body("participant-leave", size - 1), None
        if size == 1:
            end = body("conference-end", 0)
            end["reason_ended"] = "last-participant-left"
            yield self._us(0.01, 0.2), ev, end, None
        return False

    def _error(self, c: Call) -> Action:
        code, message = _CALL_ERRORS[int(self._rng.random() * len(_CALL_ERRORS))]
        yield self._us(0.05, 1), "calling.error", self._control(c, code=code, message=message), None
        return False

    # -- message flows ------------------------------------------------------------------------------------

    def _message(self, context: str, direction: str, frm: str, to: str, state: str) -> dict[str, Any]:
        r = self._rng.random
        body = self._pick(_MESSAGE_BODIES)
        media: list[str] = []
        if r() < 0.1:
            media.append(f"https://{_HOST}/api/v1/media/{self._uuid()}.jpg")
        return {
            "message_id": self._uuid(),
            "context": context,
            "direction": direction,
            "tags": [],
            "from_number": frm,
            "to_number": to,
            "body": body,
            "media": media,
            "segments": 1 + len(body) // 161,
            "message_state": state,
        }

    def inbound_message(self) -> Flow:
        context = self._context()
        p = self._message(context, "inbound", self._phone(), self._pick(self._own_numbers), INBOUND_MESSAGE.states[0])
        yield 0, INBOUND_MESSAGE.event_types[0], p, context

    def outbound_message(self) -> Flow:
        r = self._rng.random
        context = self._context()
        own = self._pick(self._own_numbers)
        template = self._message(context, "outbound", own, self._phone(), _QUEUED)
        yield 0, _MESSAGE_STATE, self._copy_message(template, _QUEUED), context
        x = r()
        if x < 0.85:
            path = _DELIVERED
        elif x < 0.93:
            path = _UNDELIVERED
        else:
            path = _FAILED_AT_ONCE if r() < 0.5 else _FAILED
        for state in path:
            p = self._copy_message(template, state)
            if state in MESSAGE.failed:
                p["reason"] = self._pick(_FAIL_REASONS)
            lo, hi = _MESSAGE_GAPS[state]
            yield self._us(lo, hi), _MESSAGE_STATE, p, context

    @staticmethod
    def _copy_message(template: dict[str, Any], state: str) -> dict[str, Any]:
        """A fresh copy per event, so a consumer editing one payload cannot change a later one."""
        p = dict(template)
        p["tags"] = list(template["tags"])
        p["media"] = list(template["media"])
        p["message_state"] = state
        return p


def fax_finished(
    direction: str, identity: str, remote: str, document: Any, ok: bool, text: str, pages: int | str
) -> dict[str, Any]:
    """The ``fax`` object of a fax action's last event (demo flows, the send_fax and receive_fax verbs)."""
    return {
        "type": "finished",
        "params": {
            "direction": direction,
            "identity": identity,
            "remote_identity": remote,
            "document": document,
            "success": ok,
            "result": 0 if ok else 49,
            "result_text": text,
            "pages": pages,
            "format": "pdf",
        },
    }
