"""Per-call and per-message timelines, for ``relay calls LOG`` and ``relay replay --by-call``.

A log interleaves every call of a session; reading one call's story means following its id across
hundreds of unrelated lines. `CallTracker` regroups the events into one block per call (and per message),
with times relative to the call's first event and the lifecycle problems of PROTOCOL.md section 9 (as
`relay_cli.lifecycles` holds them) flagged where they happen, so a broken call stands out without reading the
rest. Each event's line is its phrase from `views.phrases`, the one the pretty line shows after the event's name.

It works in one pass over logs of millions of events: a block is written out as soon as it can be and
then forgotten, and the calls that never end are bounded by ``max_open``.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Final

from relay_cli.event import event_time
from relay_cli.lifecycles import ACTIONS, CALL, DIAL, INBOUND_MESSAGE, MESSAGE
from relay_cli.views.phrases import EVENT_TYPES, Describe, describer
from relay_cli.views.text import Style, call_sgr, escape, excerpt, join, numbers, present, route, s, short

__all__ = ["CallTracker", "bounded_key"]

_CALL: Final = 0
_MESSAGE: Final = 1
_DIAL: Final = DIAL.event_type

# The lifecycles, as this module's hot path reads them: plain dicts and tuples.
_CALL_STATES: Final = CALL.states
_CALL_RANK: Final = dict(CALL.rank)
_ENDED: Final = CALL.last
_MESSAGE_STATES: Final = tuple(step[0] for step in MESSAGE.steps)
_MESSAGE_RANK: Final = {**MESSAGE.rank, **dict.fromkeys(INBOUND_MESSAGE.final, MESSAGE.last)}
_MESSAGE_FINAL: Final = MESSAGE.last
# For each action with an order: the params key holding its state, the state it starts in, and for each state
# the states it may follow ("" meaning: the first event of that action). Unlisted states are not judged.
_ACTION_ORDER: Final[dict[str, tuple[str, str, dict[str, frozenset[str]]]]] = {
    event_type: (action.key, action.start, dict(action.follows))
    for event_type, action in ACTIONS.items()
    if action.follows
}

# A call that ended but whose dial has not reported yet (a failed dial reports just after the leg ended)
# is held this long, in log time or in events, before it is written without the dial's outcome.
_DIAL_GRACE_SECONDS: Final = 5.0
_DIAL_GRACE_EVENTS: Final = 1_000
# One block never keeps more event lines than this; the rest are counted, so one endless call stays bounded.
_MAX_LINES: Final = 5_000
_MAX_ENTRIES: Final = 3 * _MAX_LINES  # see `_Block.entries`
# Memory is bounded by counts (calls held, lines per block, ids remembered), so no one item may be large: ids and
# tags longer than any real one are held as a head and a digest (`bounded_key`), descriptions are cut.
_MAX_KEY: Final = 256
_MAX_WHAT: Final = 1_024
_WARN: Final = "⚠"
# Blocks are written as UTF-8. Text from the payload is escaped but may hold lone surrogates, which `feed`
# gives back as they were: "surrogatepass" encodes them rather than failing.
_UTF8: Final = "utf-8"
_SURROGATES: Final = "surrogatepass"
# An event's clock, its time since the block's first, starts its line: ``"\n  +1.234s"``, padded to the widest
# clock of the block. `_render` pads each to this width (enough under 100 s) as it makes it, and pads them
# again only in the blocks that last longer.
_CLOCK_WIDTH: Final = 11
_NO_CLOCK: Final = "\n  ?".ljust(_CLOCK_WIDTH)


def bounded_key(ident: str) -> str:
    """An id as held in memory: itself, or for one longer than any real id, its head and a digest of the whole.

    Caches and maps are bounded by their number of entries, which bounds memory only when each entry is small:
    a 200 KB call id must not be kept, once per call, in every map that knows the call.
    """
    if len(ident) <= _MAX_KEY:
        return ident
    import hashlib  # here: only ids no real call has need it, and importing it costs every run 2 ms

    digest = hashlib.blake2b(ident.encode(_UTF8, _SURROGATES), digest_size=12).hexdigest()
    return f"{ident[:64]}…{digest}"


_STATE_TYPES: Final = frozenset(CALL.event_types)
_MESSAGE_TYPES: Final = frozenset((*MESSAGE.event_types, *INBOUND_MESSAGE.event_types))
_DESCRIBED: Final = tuple(
    (event_type, _MESSAGE if event_type in _MESSAGE_TYPES else _CALL)
    for event_type in EVENT_TYPES
    if event_type.startswith("calling.") or event_type in _MESSAGE_TYPES
)
"""The event types a block shows, and the family of each; other types are not about a call or a message."""

# How `CallTracker.feed` joins and judges an event, decided once per event type (`CallTracker._spec`) rather
# than by testing every event's type against each special case.
_K_STATE: Final = 0  # a call's own state: joined by ``params.call_id``, advances the call's lifecycle
_K_ACTION: Final = 1  # any other call event joined by ``params.call_id``
_K_CONNECT: Final = 2  # an action that may also name a peer leg
_K_DIAL: Final = 3  # joined by the dialled call's id, or by the dial's tag before that id is known
_K_MESSAGE: Final = 4  # ``messaging.state``
_K_RECEIVE: Final = 5  # ``messaging.receive``, which is a whole inbound message on its own

_Lifecycle = tuple[str, str, dict[str, frozenset[str]]]
# (kind, column text, describe, action name for notes, lifecycle from _ACTION_ORDER or None)
_Spec = tuple[int, str, Describe, str, "_Lifecycle | None"]


class _Block:
    """Everything kept about one open call or message until its block is written."""

    __slots__ = (
        "awaiting_dial",
        "chosen",
        "context",
        "continued",
        "controls",
        "dial_settled",
        "direction",
        "disorder",
        "done",
        "end_seq",
        "end_ts",
        "entries",
        "first_ts",
        "ident",
        "legs",
        "message",
        "numbers",
        "omitted",
        "peer_of",
        "rank",
        "tag",
    )

    def __init__(self, ident: str, message: bool = False, tag: str = "") -> None:
        self.ident = ident
        self.message = message
        self.tag = tag
        self.direction: Any = None
        self.numbers: str | None = None
        self.context: Any = None
        self.peer_of = ""
        self.legs: tuple[str, ...] = ()
        # Three items per event shown: its time, its column and its description. The clock made of the time
        # needs the whole block for its width; the rest is joined as it is. One flat list, not a tuple or a
        # string per event: the least to build while reading, and nothing per event for the GC to track.
        self.entries: list[Any] = []
        self.omitted = 0
        self.first_ts: float | None = None
        self.rank = -1
        self.controls: dict[tuple[str, str], str] | None = None
        self.disorder = 0
        self.done = False
        self.end_ts = 0.0
        self.end_seq = 0
        self.awaiting_dial = False
        self.dial_settled = False
        self.continued = False
        self.chosen = False


def _reopen(block: _Block, gone: bool | None, final_rank: int) -> None:
    """A call or message seen again after its block was written out: a continuation, done if it had ended."""
    if gone is not None:
        block.continued = True
        if gone:
            block.rank = final_rank
            block.done = True


class CallTracker:
    """Regroups a stream of event payloads into one text block per call and per message.

    Blocks come out in the order of each call's (or message's) *first* event, as users read a log from the
    top: a call that ends is written only once every call that started before it has been written, so a
    finished call may be held behind an older one still open. When more than ``max_open`` calls and messages
    are held (open, or finished and waiting), the oldest is written anyway, flagged when it has not ended;
    memory then stays bounded on logs whose calls never end.

    `feed` returns the text of the blocks the event completed (usually ``""``), `finish` the rest, flagged
    ``⚠ no end state``. Each block is a header line, one line per event and a blank line. Calls are joined by
    ``params.call_id``, dials by ``params.call.call_id`` or, when a failed dial names no call, by ``params.tag``
    (learned from the ``created`` state that carries it). A call that ended waits a little for its dial's
    outcome, which arrives just after the leg ends. Connect peer legs name their parent in ``params.peer``;
    both blocks show the link. With ``call_id``, only calls whose id starts with that prefix, their peer legs,
    and messages whose id starts with it are kept. Events of neither family are ignored. With ``accept``, only
    the calls and messages of which ``accept`` took at least one event are written, but each with all of its
    events, its lifecycle judged on them all: a filter on event types must not make every call look unended.
    """

    def __init__(
        self,
        *,
        style: Style,
        call_id: str | None = None,
        max_open: int = 10_000,
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self._style = style
        self._accept = accept
        self._prefix = call_id
        self._max_open = max(1, max_open)
        self._bold = style.bold
        self._reset = style.reset
        self._warn = style.code("1;33")
        self._dim = style.dim
        self._specs: dict[str, _Spec] = {
            event_type: self._spec(event_type, family) for event_type, family in _DESCRIBED
        }
        self._order: deque[_Block] = deque()
        self._calls: dict[str, _Block] = {}
        self._tags: dict[str, _Block] = {}
        self._messages: dict[str, _Block] = {}
        # Ids (and dial tags) of blocks already written: a late event then says which call it belongs to.
        # Ordered so the oldest is dropped in O(1) once over the limit; a plain dict deleted from the front
        # makes each ``next(iter(...))`` step over every slot freed since it last resized.
        self._gone: OrderedDict[str, bool] = OrderedDict()
        self._gone_tags: OrderedDict[str, str] = OrderedDict()
        self._gone_limit = max(1_024, self._max_open)
        self._clock = 0.0
        self._seq = 0
        # Whether `feed` should try to write blocks after this event: the oldest block has ended but waits for
        # its dial's outcome (then it tries at every event), or one more block than ``max_open`` is held.
        # Otherwise the oldest can only be written once some block ends, so `feed` tries only then, rather
        # than looking at the front of ``_order`` at every event.
        self._due = False

    @property
    def held(self) -> int:
        """Calls and messages held in memory: open, or ended and waiting behind an older open one."""
        return len(self._order)

    def _spec(self, event_type: str, family: int) -> _Spec:
        """How `feed` handles this event type: worked out once, since a log repeats a handful of types."""
        if event_type in _STATE_TYPES:
            kind = _K_STATE
        elif event_type == _DIAL:
            kind = _K_DIAL
        elif event_type == "calling.call.connect":
            kind = _K_CONNECT
        elif family == _MESSAGE:
            kind = _K_RECEIVE if event_type in INBOUND_MESSAGE.event_types else _K_MESSAGE
        else:
            kind = _K_ACTION
        action = escape(event_type.rpartition(".")[2])[:64]
        # Between an event's clock and its description (see `_Block.entries`).
        column = f" {self._dim}{action or '-':<11}{self._reset} "
        return kind, column, describer(event_type, headline=False), action, _ACTION_ORDER.get(event_type)

    def feed(self, payload: dict[str, Any]) -> str:
        """Take one event; return the text of the blocks it completed, or ``""``."""
        return self.feed_bytes(payload).decode(_UTF8, _SURROGATES)

    def feed_bytes(self, payload: dict[str, Any], raw: bytes | None = None, frame_id: Any = None) -> bytes:
        """`feed`, UTF-8 encoded: the pipeline's `Printer`, which passes ``raw`` and ``frame_id`` (unused).

        This runs for every event of logs of millions, so the common path (an event of a call already
        open) is written out here, guided by the spec of the event's type; the rarer steps go to helpers.
        Working in bytes spares the pipeline a wrapper and an encode per event, and lets `_render` encode
        a block's long ASCII body apart from its header (whose ``→`` would widen the whole text).
        """
        if payload.__class__ is not dict and not isinstance(payload, dict):
            return b""
        event_type = payload.get("event_type")
        params = payload.get("params")
        if event_type.__class__ is not str or (params.__class__ is not dict and not isinstance(params, dict)):
            return b""
        spec = self._specs.get(event_type)
        if spec is None:
            if not event_type.startswith("calling."):
                return b""
            spec = self._spec(event_type, _CALL)
            if len(self._specs) < 512 and len(event_type) <= _MAX_KEY:
                self._specs[event_type] = spec
        kind, column, describe, action, lifecycle = spec
        self._seq += 1
        ts = payload.get("timestamp")
        if ts.__class__ is float and self._clock < ts < math.inf:
            self._clock = ts  # the common case, a valid time moving the log's clock on
        elif ts.__class__ is not float or not 0.0 < ts < math.inf:
            ts = event_time(payload)
            if ts is not None and ts > self._clock:
                self._clock = ts

        block: _Block | None
        what: str | None = None  # the description, when the branch below already has it
        if kind <= _K_CONNECT:
            call_id = params.get("call_id")
            if call_id.__class__ is not str or not call_id:
                return b""
            block = self._calls.get(call_id)
            if block is None:
                if len(call_id) > _MAX_KEY:
                    call_id = bounded_key(call_id)
                    block = self._calls.get(call_id)
                if block is None:
                    block = self._open_call(call_id, params)
                    if block is None:
                        return b""
            if kind == _K_STATE:
                if block.rank < 0 or block.numbers is None:
                    self._learn_call(block, call_id, params, payload)
                # The call's lifecycle: states only move forward, and nothing follows ``ended``.
                state = params.get("call_state")
                rank = _CALL_RANK.get(state, -1) if state.__class__ is str else -1
                if rank >= 0:
                    # Half of all events: the state's phrase (see `phrases`), written here without the call.
                    reason = params.get("end_reason")
                    what = state if reason is None or reason == "" else f"{state} ({s(reason)})"
                if block.rank == _ENDED:
                    block.disorder += 1
                    note = f"{s(state) or 'state'} after ended"
                elif rank > block.rank:
                    block.rank = rank
                    if rank == _ENDED:
                        block.done = True
                    note = ""
                elif rank >= 0:
                    block.disorder += 1
                    note = f"{state} after {_CALL_STATES[block.rank]}"
                else:
                    note = ""
            else:
                if kind == _K_CONNECT:
                    peer = params.get("peer")
                    leg = peer.get("call_id") if isinstance(peer, dict) else None
                    if leg.__class__ is str and leg and leg != call_id:
                        self._link(block, leg)
                if block.rank == _ENDED:
                    block.disorder += 1
                    note = f"{action} after ended"
                elif lifecycle is not None:
                    note = self._judge_action(block, event_type, params, lifecycle, action)
                else:
                    note = ""
        elif kind == _K_DIAL:
            block = self._dial_block(params, payload)
            if block is None:
                return b""
            note = self._judge_dial(block, params, lifecycle, action)
        else:
            block = self._message_block(params, payload)
            if block is None:
                return b""
            note = self._judge_message(block, params, kind == _K_RECEIVE)
            if not block.entries:
                what = join(describe(params), excerpt(params.get("body")))

        if self._accept is not None and not block.chosen:
            block.chosen = self._accept(payload)
        if block.first_ts is None:
            block.first_ts = ts
        entries = block.entries
        if len(entries) < _MAX_ENTRIES:
            if what is None:
                what = describe(params)
            if len(what) > _MAX_WHAT:
                what = what[:_MAX_WHAT] + "…"
            if note:
                what = f"{what or '-'}  {self._warn}{_WARN} out of order: {note}{self._reset}"
            entries += (ts, column, what or "-")
        else:
            block.omitted += 1
        if block.done and not block.end_seq:
            # Just ended: it may be the oldest, and may be written now (if the oldest has ended too).
            block.end_seq = self._seq
            block.end_ts = ts if ts is not None else self._clock
            if self._order[0].done:
                return self._drain()
        if self._due:
            return self._drain()
        return b""

    def finish(self) -> str:
        """Every block still held, oldest first, flagged when its call or message never reached its end."""
        out = [self._render(block, not block.done) for block in self._order]
        self._order.clear()
        self._due = False
        self._calls.clear()
        self._tags.clear()
        self._messages.clear()
        self._gone.clear()
        self._gone_tags.clear()
        return b"".join(out).decode(_UTF8, _SURROGATES)

    # -- joining events to blocks -------------------------------------------------------------------------

    def _learn_call(self, block: _Block, call_id: str, params: dict[str, Any], payload: dict[str, Any]) -> None:
        """What a call's state events tell until its header is complete: numbers, parent leg, pending dial."""
        self._learn(block, params, payload, params.get("device"))
        peer = params.get("peer")
        parent = peer.get("call_id") if isinstance(peer, dict) else None
        if not block.peer_of and parent.__class__ is str and parent and (parent := bounded_key(parent)) != call_id:
            block.peer_of = parent
            self._link(self._calls.get(parent), call_id)
        if params.get("created_by") == "dial" and not block.dial_settled:
            block.awaiting_dial = True

    def _open_call(self, call_id: str, params: dict[str, Any]) -> _Block | None:
        """A new block for a call, or the dial block waiting for this call's id; None when filtered out."""
        tag = params.get("tag")
        if tag.__class__ is str and tag:
            waiting = self._tags.get(bounded_key(tag))
            if waiting is not None and not waiting.ident:
                waiting.ident = call_id
                self._calls[call_id] = waiting
                return waiting
        if self._prefix is not None and not self._admits(call_id, params):
            return None
        block = _Block(call_id)
        _reopen(block, self._gone.get(call_id), _ENDED)
        self._calls[call_id] = block
        self._hold(block)
        return block

    def _admits(self, call_id: str, params: dict[str, Any]) -> bool:
        """With a ``call_id`` prefix: whether this call is one asked for, or a peer leg of one."""
        prefix = self._prefix
        if prefix is None or call_id.startswith(prefix):
            return True
        peer = params.get("peer")
        parent = peer.get("call_id") if isinstance(peer, dict) else None
        return parent.__class__ is str and ((parent := bounded_key(parent)) in self._calls or parent in self._gone)

    def _dial_block(self, params: dict[str, Any], payload: dict[str, Any]) -> _Block | None:
        call = params.get("call")
        call_id = call.get("call_id") if isinstance(call, dict) else None
        tag = params.get("tag")
        tag = bounded_key(tag) if tag.__class__ is str else ""
        block: _Block | None
        if call_id.__class__ is str and call_id:
            call_id = bounded_key(call_id)
            block = self._calls.get(call_id)
            if block is None:
                tagged = self._tags.get(tag) if tag else None
                if tagged is not None and tagged.ident and tagged.ident != call_id:
                    tagged = None
                block = tagged if tagged is not None else self._open_call(call_id, params)
                if block is None:
                    return None
                if not block.ident:
                    block.ident = call_id
                    self._calls[call_id] = block
        elif tag:
            block = self._tags.get(tag)
            if block is None:
                earlier = self._gone_tags.get(tag)
                if earlier is not None:
                    block = self._open_call(earlier, {})
                elif self._prefix is None:
                    block = _Block("", tag=tag)
                    self._hold(block)
                if block is None:
                    return None
        else:
            return None
        if tag and not block.tag:
            block.tag = tag
            self._tags.setdefault(tag, block)
        self._learn(block, params, payload, call.get("device") if isinstance(call, dict) else None)
        return block

    def _learn(self, block: _Block, params: dict[str, Any], payload: dict[str, Any], device: Any) -> None:
        """Fill the header from the first event that tells: direction, numbers, context, dial tag."""
        if block.numbers is None:
            block.numbers = numbers(device) or None
        if block.direction is None:
            direction = params.get("direction")
            if direction is not None and direction != "":
                block.direction = direction
        if block.context is None:
            context = params.get("context") or payload.get("context")
            if context is not None and context != "":
                block.context = context
        if not block.tag and not block.message:
            tag = params.get("tag")
            if tag.__class__ is str and tag:
                block.tag = tag = bounded_key(tag)
                self._tags.setdefault(tag, block)

    def _message_block(self, params: dict[str, Any], payload: dict[str, Any]) -> _Block | None:
        message_id = params.get("message_id")
        if message_id.__class__ is not str or not message_id:
            return None
        block = self._messages.get(message_id)
        if block is None and len(message_id) > _MAX_KEY:
            message_id = bounded_key(message_id)
            block = self._messages.get(message_id)
        if block is None:
            if self._prefix is not None and not message_id.startswith(self._prefix):
                return None
            block = _Block(message_id, message=True)
            _reopen(block, self._gone.get("\0" + message_id), _MESSAGE_FINAL)
            self._messages[message_id] = block
            self._hold(block)
        if block.numbers is None:
            src, dst = params.get("from_number"), params.get("to_number")
            if present(src) or present(dst):
                block.numbers = route(src, dst)
            self._learn(block, params, payload, None)
        return block

    def _hold(self, block: _Block) -> None:
        """Keep a new block until it can be written; past ``max_open``, this event's end writes the oldest."""
        order = self._order
        order.append(block)
        if len(order) > self._max_open:
            self._due = True

    def _link(self, parent: _Block | None, leg: str) -> None:
        leg = bounded_key(leg)
        if parent is not None and leg != parent.ident and leg not in parent.legs and len(parent.legs) < 64:
            parent.legs += (leg,)

    # -- lifecycle checks ---------------------------------------------------------------------------------

    def _judge_dial(self, block: _Block, params: dict[str, Any], lifecycle: _Lifecycle | None, action: str) -> str:
        """Note the dial's outcome, which a call that ended waits for; dials still report after the leg ended."""
        state = params.get("dial_state")
        if state in DIAL.final:
            block.awaiting_dial = False
            block.dial_settled = True
            if not block.ident:
                block.done = True
        elif state == DIAL.start and not block.dial_settled:
            block.awaiting_dial = True
        if lifecycle is None:
            return ""
        return self._judge_action(block, _DIAL, params, lifecycle, action)

    def _judge_action(
        self, block: _Block, event_type: str, params: dict[str, Any], lifecycle: _Lifecycle, action: str
    ) -> str:
        """Advance one action's lifecycle (per ``control_id``); return what was out of order, or ``""``."""
        key, start, allowed = lifecycle
        state = params.get(key)
        if state.__class__ is not str:
            return ""
        before = allowed.get(state)
        if before is None:
            return ""
        control = params.get("control_id")
        if control.__class__ is not str:
            control = ""
        slot = (event_type, control)
        controls = block.controls
        if controls is None:
            controls = block.controls = {}
        previous = controls.get(slot, "")
        controls[slot] = state
        if previous in before or (not control and state == start):
            return ""
        block.disorder += 1
        if previous:
            return f"{action} {state} after {previous}"
        return f"{action} {state} without {start}"

    def _judge_message(self, block: _Block, params: dict[str, Any], received: bool) -> str:
        """Advance the message's lifecycle; an inbound ``messaging.receive`` is the whole story on its own."""
        state = params.get("message_state")
        rank = _MESSAGE_RANK.get(state, -1) if state.__class__ is str else -1
        if block.rank == _MESSAGE_FINAL:
            block.disorder += 1
            return f"{s(state) or 'event'} after the final state"
        if received and rank < _MESSAGE_FINAL:
            block.rank = _MESSAGE_FINAL
            block.done = True
            return ""
        if rank < 0:
            return ""
        if rank <= block.rank:
            block.disorder += 1
            return f"{state} after {_MESSAGE_STATES[block.rank]}"
        block.rank = rank
        if rank == _MESSAGE_FINAL:
            block.done = True
        return ""

    # -- writing blocks -----------------------------------------------------------------------------------

    def _drain(self) -> bytes:
        """Write the blocks at the front that may go: finished ones, and the oldest while over ``max_open``."""
        order = self._order
        out: list[bytes] = []
        while order:
            block = order[0]
            if len(order) > self._max_open:
                out.append(self._render(block, not block.done, evicted=True))
            elif block.done and (
                not block.awaiting_dial
                or self._clock - block.end_ts >= _DIAL_GRACE_SECONDS
                or self._seq - block.end_seq >= _DIAL_GRACE_EVENTS
            ):
                out.append(self._render(block, False))
            else:
                self._due = block.done
                break
            order.popleft()
            self._forget(block)
        else:
            self._due = False
        return b"".join(out)

    def _forget(self, block: _Block) -> None:
        gone, ident = self._gone, block.ident
        if block.message:
            if self._messages.get(ident) is block:
                del self._messages[ident]
            gone["\0" + ident] = block.done
        else:
            if ident and self._calls.get(ident) is block:
                del self._calls[ident]
            if ident:
                gone[ident] = block.done
            if block.tag and self._tags.get(block.tag) is block:
                del self._tags[block.tag]
                if ident:
                    self._gone_tags[block.tag] = ident
                    if len(self._gone_tags) > self._gone_limit:
                        self._gone_tags.popitem(last=False)
        if len(gone) > self._gone_limit:
            gone.popitem(last=False)

    def _render(self, block: _Block, unfinished: bool, *, evicted: bool = False) -> bytes:
        if self._accept is not None and not block.chosen:
            return b""
        bold, reset, warn = self._bold, self._reset, self._warn
        # `_learn` keeps only present values; most are printable strings, shown without a call to `s`.
        rest = ""
        direction = block.direction
        if direction is not None:
            rest = "  " + (direction if direction.__class__ is str and direction.isprintable() else s(direction))
        if block.numbers is not None:
            rest += f"  {block.numbers}"
        context = block.context
        if context is not None:
            rest += f"  (context {context if context.__class__ is str and context.isprintable() else s(context)})"
        if block.peer_of:
            rest += f"  peer of {short(block.peer_of)}"
        if block.legs:
            rest += "  peer leg " + ", ".join([short(leg) for leg in block.legs])
        ident = block.ident
        if ident:
            kind = "message" if block.message else "call"
            colour = self._style.code(call_sgr(ident)) if self._style.color else ""
            if not ident.isprintable():
                ident = s(ident)
            head = f"{bold}{kind} {colour}{ident}{reset}{bold}{rest}{reset}"
        else:
            head = f"{bold}dial {s(block.tag)}{rest}  (call id unknown){reset}"
        if unfinished:
            what = "no final state" if block.message else "no end state"
            if evicted:
                what += f" (over {self._max_open} held)"
            head += f"  {warn}{_WARN} {what}{reset}"
        if block.disorder:
            head += f"  {warn}{_WARN} out of order{reset}"
        if block.continued:
            head += f"  {warn}{_WARN} continued: earlier events were written above{reset}"
        # Each event line is its clock, padded to the block's widest, then the column and description `feed`
        # kept. The clocks (each starting its line) take the place of the times in ``entries``, so joining that
        # list gives the lines; the block is written once, then dropped. Formatting them here, a block at a
        # time, rather than in `feed` keeps the formatting code in the CPU's cache. ``base`` is None only when
        # no event had a time. %-formatting costs a third less than the f-string's format spec.
        entries = block.entries
        base = block.first_ts
        clocks = [_NO_CLOCK if ts is None else ("\n  %+.3fs" % (ts - base)).ljust(_CLOCK_WIDTH) for ts in entries[0::3]]
        width = max(map(len, clocks), default=0)
        if width > _CLOCK_WIDTH:
            clocks = [clock.ljust(width) for clock in clocks]
        entries[0::3] = clocks
        more = f"  … {block.omitted} more events not shown\n" if block.omitted else ""
        return head.encode(_UTF8, _SURROGATES) + f"{''.join(entries)}\n{more}\n".encode(_UTF8, _SURROGATES)
