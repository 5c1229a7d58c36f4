"""What each event says, in a few words: one phrase per event type, for every view.

The phrase is the event's state and what it carries (``finished 3s https://…``, ``connected peer 8d19821f``,
``failed (busy)``). A view asks `describer` for an event type's phrase maker in one of two forms:

- the bare phrase, for the timeline, where a column already names the event and the block's header the call;
- the headline, for the one-line pretty view: the event's name first (``record finished 3s``), and for the
  events that open a call or a message, what the line would otherwise lack (its numbers, its context, the
  leg it is a peer of, a message's body).

Both forms come from the same function, so the views cannot drift apart: a maker gets the name to start with (the
last part of the event type, or ``""``) and gives the one closure the view calls per event. These run for every
event of logs of millions (hot paths): the frequent types append their optional parts with f-strings and test for
a printable string before calling `s` (a wrapper per view, or packing parts for `join`, measured 5% of a pretty
replay); the rarer types use `join`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from relay_cli import protocol
from relay_cli.lifecycles import ANSWERED, CALL
from relay_cli.views.text import excerpt, get, join, numbers, obj, present, route, s, short, with_reason

__all__ = ["EVENT_TYPES", "Describe", "describer"]

Describe = Callable[[dict[str, Any]], str]
"""Turns an event's params into its phrase (or headline)."""

_Maker = Callable[[str], Describe]
"""Makes a type's describer; it gets the name to start with: the event's (a headline) or ``""`` (a phrase)."""


def _fields(*keys: str) -> _Maker:
    """A phrase of the values at these keys of params, those present, in order: ``streaming wss://…``."""

    def maker(name: str) -> Describe:
        if len(keys) == 1:
            key = keys[0]
            head = f"{name} " if name else ""

            def one(p: dict[str, Any]) -> str:
                value = p.get(key)
                if value.__class__ is not str or not value.isprintable():
                    value = s(value)
                return head + value if value else name

            return one

        def make(p: dict[str, Any]) -> str:
            text = name
            for key in keys:
                value = s(p.get(key))
                if value:
                    text = f"{text} {value}" if text else value
            return text

        return make

    return maker


_NOT_YET_UP: Final = frozenset(CALL.states[: CALL.rank[ANSWERED]])


def _state(name: str) -> Describe:
    """``answered``, ``ended (hangup)``; the headline adds a new or ringing call's numbers, a bridged leg's parent.

    The timeline writes this phrase inline for the states it knows (its hot path); a test holds the two equal.
    """
    if not name:
        return lambda p: with_reason(p.get("call_state"), p.get("end_reason"))

    def headline(p: dict[str, Any]) -> str:
        state = p.get("call_state")
        if state.__class__ is not str or not state.isprintable():
            state = s(state)
        reason = p.get("end_reason")
        text = state if reason is None or reason == "" else with_reason(state, reason)
        if state in _NOT_YET_UP:
            ends = numbers(p.get("device"))
            if ends:
                text = f"{text} {ends}"
        peer = p.get("peer")
        if peer.__class__ is dict and peer.get("call_id"):
            text = f"{text} peer of {short(peer['call_id'])}"
        return text

    return headline


def _receive(name: str) -> Describe:
    """The call's state; the headline says instead ``inbound call +1555… → +1555… on office``."""
    if not name:
        return _state(name)

    def headline(p: dict[str, Any]) -> str:
        ends = numbers(p.get("device"))
        text = f"inbound call {ends}" if ends else "inbound call"
        context = p.get("context")
        return f"{text} on {s(context)}" if context else text

    return headline


def _record(name: str) -> Describe:
    """``finished 3s https://…``: duration and url from ``params.record``, else from flat params."""

    def make(p: dict[str, Any]) -> str:
        rec = obj(p, "record")
        text = name
        state = s(p.get("state"))
        if state:
            text = f"{text} {state}" if text else state
        duration = rec.get("duration", p.get("duration"))
        if duration is not None and duration != "":
            text = f"{text} {s(duration)}s" if text else f"{s(duration)}s"
        url = s(rec.get("url") or p.get("url"))
        if url:
            text = f"{text} {url}" if text else url
        return text

    return make


def _collect(name: str) -> Describe:
    """``digit 12#``, ``speech "billing please" (0.93)``; a continuous collect's partial results say so."""

    head = f"{name} " if name else ""

    def make(p: dict[str, Any]) -> str:
        result = p.get("result")
        if not isinstance(result, dict):
            result = {}
        rp = obj(result, "params")
        kind = result.get("type")
        if kind.__class__ is not str or not kind.isprintable():
            kind = s(kind)
        if not kind:
            kind = s(p.get("state"))
        text = head + kind if kind else name
        digits = rp.get("digits")
        if digits is not None and digits != "":
            detail = digits if digits.__class__ is str and digits.isprintable() else s(digits)
            terminator = rp.get("terminator")
            if terminator is not None:
                detail += s(terminator)
        else:
            detail = excerpt(rp.get("text"))
        if detail:
            text = f"{text} {detail}" if text else detail
        confidence = rp.get("confidence")
        if confidence is not None and confidence != "":
            text = f"{text} ({s(confidence)})" if text else f"({s(confidence)})"
        if p.get("final") in (False, "false"):
            text = f"{text} (partial)" if text else "(partial)"
        return text

    return make


def _connect(name: str) -> Describe:
    """``connected peer 8d19821f``, ``failed (busy)``: the peer when its id is known, a failure's reason."""

    head = f"{name} " if name else ""

    def make(p: dict[str, Any]) -> str:
        state = p.get("connect_state")
        if state.__class__ is not str or not state.isprintable():
            state = s(state)
        text = head + state if state else name
        peer = p.get("peer")
        if isinstance(peer, dict):
            leg = short(peer.get("call_id"))
            if leg:
                text = f"{text} peer {leg}" if text else f"peer {leg}"
        why = p.get("failed_reason")
        if why is not None and why != "":
            text = f"{text} ({s(why)})" if text else f"({s(why)})"
        return text

    return make


def _dial(name: str) -> Describe:
    """``answered winner 8d19821f``; the headline adds the dialled numbers, which only an answered dial carries."""

    head = f"{name} " if name else ""

    def make(p: dict[str, Any]) -> str:
        state = p.get("dial_state")
        if state.__class__ is not str or not state.isprintable():
            state = s(state)
        text = head + state if state else name
        call = p.get("call")
        if call.__class__ is not dict:
            return text
        if call.get("dial_winner") in (True, "true"):
            winner = call.get("call_id")
            if winner is not None and winner != "":
                text = f"{text} winner {short(winner)}" if text else f"winner {short(winner)}"
        if name:
            ends = numbers(call.get("device"))
            if ends:
                text = f"{text} {ends}"
        return text

    return make


def _message(name: str) -> Describe:
    """``delivered``, ``failed (Carrier rejected)``; the headline adds the numbers first and the body last."""
    if not name:
        return lambda p: with_reason(p.get("message_state"), p.get("reason"))

    def headline(p: dict[str, Any]) -> str:
        text = route(p.get("from_number"), p.get("to_number"))
        state = with_reason(p.get("message_state"), p.get("reason"))
        if state:
            text = f"{text} {state}"
        body = excerpt(p.get("body"))
        return f"{text} {body}" if body else text

    return headline


def _detect(name: str) -> Describe:
    """``machine MACHINE beep``."""

    def make(p: dict[str, Any]) -> str:
        detect = obj(p, "detect")
        dp = obj(detect, "params")
        beep = "beep" if dp.get("beep") in (True, "true") else ""
        return join(name, s(detect.get("type")), s(dp.get("event")), beep)

    return make


def _fax(name: str) -> Describe:
    """``finished send 2 pages OK``."""

    def make(p: dict[str, Any]) -> str:
        fax = obj(p, "fax")
        fp = obj(fax, "params")
        pages = fp.get("pages")
        shown = f"{s(pages)} pages" if present(pages) else ""
        return join(name, s(fax.get("type")), s(fp.get("direction")), shown, s(fp.get("result_text")))

    return make


def _tap(name: str) -> Describe:
    """``tapping both``: the state and the direction tapped."""
    return lambda p: join(name, s(p.get("state")), s(get(p, "tap", "params", "direction")))


def _refer(name: str) -> Describe:
    """``error sip:x@example.com 488``: the code of the NOTIFY, else of the REFER."""

    def make(p: dict[str, Any]) -> str:
        code = p.get("sip_notify_response_code") or p.get("sip_refer_response_code")
        return join(name, s(p.get("state")), s(p.get("sip_refer_to")), s(code))

    return make


def _queue(name: str) -> Describe:
    """``enqueue support_queue position 2/5``."""

    def make(p: dict[str, Any]) -> str:
        position = p.get("position")
        where = f"position {s(position)}/{s(p.get('size'))}" if present(position) else ""
        return join(name, s(p.get("status")), s(p.get("name")), where)

    return make


def _transcribe(name: str) -> Describe:
    """``finished 43.7s https://…``."""

    def make(p: dict[str, Any]) -> str:
        duration = p.get("duration")
        return join(name, s(p.get("state")), f"{s(duration)}s" if present(duration) else "", s(p.get("url")))

    return make


def _denoise(name: str) -> Describe:
    head = f"{name} " if name else ""
    return lambda p: head + ("on" if p.get("denoised") in (True, "true") else "off")


_PHRASES: Final[dict[str, _Maker]] = {
    "calling.call.state": _state,
    "calling.call.receive": _receive,
    "calling.call.play": _fields("state"),
    "calling.call.record": _record,
    "calling.call.collect": _collect,
    "calling.call.connect": _connect,
    "calling.call.detect": _detect,
    "calling.call.fax": _fax,
    "calling.call.tap": _tap,
    "calling.call.stream": _fields("state", "url"),
    "calling.call.send_digits": _fields("state"),
    "calling.call.dial": _dial,
    "calling.call.refer": _refer,
    "calling.call.denoise": _denoise,
    "calling.call.pay": _fields("state", "for"),
    "calling.call.queue": _queue,
    "calling.call.echo": _fields("state"),
    "calling.call.transcribe": _transcribe,
    "calling.call.hold": _fields("state"),
    "calling.conference": _fields("status", "name"),
    "calling.error": _fields("code", "message"),
    "messaging.receive": _message,
    "messaging.state": _message,
    "signalwire.authorization.state": lambda name: lambda p: "session authorization updated",
}

EVENT_TYPES: Final = tuple(_PHRASES)
"""The event types with a phrase of their own."""


def _unknown_state(p: dict[str, Any]) -> str:
    """An event of a type not known here, as a phrase: whatever state-like field it carries."""
    for key in ("state", "status", "call_state"):
        value = p.get(key)
        if present(value):
            return s(value)
    return ""


def _unknown_headline(p: dict[str, Any]) -> str:
    """An event of a type not known here, as a headline: its params, redacted, as a JSON excerpt."""
    return excerpt(orjson.dumps(protocol.redact(p)).decode(), 80)


def describer(event_type: str, *, headline: bool) -> Describe:
    """The phrase maker for an event type: the headline (``headline=True``) or the bare phrase.

    A type not known here gets a headline of its params and a phrase of its state-like field. Make it once
    per event type, not per event.
    """
    maker = _PHRASES.get(event_type)
    if maker is None:
        return _unknown_headline if headline else _unknown_state
    return maker(event_type.rpartition(".")[2] if headline else "")
