"""The call-control verbs (``calling.*``): their params checked, their results, and what each does to the call.

Every verb the SDK sends has an entry in :data:`CALL_METHODS`. A request is checked against the fields its method
needs (names from the SDK's generated wire types; ``-32602`` names the first one missing or wrong), then answered
``{"code": "200", "message": ..., "call_id", "control_id"}`` (EMULATOR.md section 3). In ``scripted`` mode that is
all; otherwise the call must be the session's (``404``, ``410`` once ended, ``409`` for a demo call) and the verb
drives it through :class:`~relay_cli.emulator.calls.CallControl`: the events of EMULATOR.md section 4 follow the
result, timed in simulated seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from relay_cli.emulator.calls import (
    CONFLICT,
    DIAL_EVENT,
    EVENT_GAP,
    Action,
    Call,
    CallControl,
    speaking_time,
)
from relay_cli.emulator.farends import FarEnd
from relay_cli.emulator.flows import fax_finished
from relay_cli.lifecycles import END_REASONS
from relay_cli.protocol import CALL_PASS, INVALID_PARAMS, error, result

if TYPE_CHECKING:
    from relay_cli.emulator.methods import Handler, Request
    from relay_cli.emulator.sessions import EmulatorCore, Session

__all__ = ["CALL_METHODS", "INVALID_DATA", "media_seconds"]

INVALID_DATA = {"signalwire_error_code": "INVALID_PARAMS"}
AUDIO_SECONDS = 4.0
"""How long an audio file plays (the emulator does not fetch it)."""
RINGTONE_SECONDS = 5.0
PRESS_AFTER = 1.0
"""Simulated seconds a far end takes to start pressing or speaking once prompted."""
DIGIT_GAP = 0.25
NO_INPUT = 5.0
"""Seconds a collect waits for input that never comes, unless its ``initial_timeout`` says otherwise."""
DETECT_TIMEOUT = 30.0
RECORD_INITIAL = 4.0
RECORD_SILENCE = 1.0
PAY_SECONDS = 10.0
FAX_SECONDS = 20.0
QUEUE_WAIT = 10.0
ECHO_SECONDS = 10.0
MAX_DEVICES = 100
_DTMF = frozenset("0123456789*#ABCDabcdwW")
_MEDIA = ("audio", "tts", "silence", "ringtone")
_PLAY, _RECORD, _COLLECT = "calling.call.play", "calling.call.record", "calling.call.collect"
_WHY = {"404": "Call not found", "410": "Call has ended", CONFLICT: "Call is controlled by another client"}

STR, LIST, OBJ, NUM, ANY = "a non-empty string", "a non-empty list", "an object", "a number", "a value"
Field = tuple[str, str]
CALL: tuple[Field, ...] = (("call_id", STR), ("node_id", STR))
ACTION: tuple[Field, ...] = (*CALL, ("control_id", STR))
Runner = Callable[[CallControl, Call, dict[str, Any]], "dict[str, Any] | None"]


class Invalid(ValueError):
    """A param the method cannot use: answered ``-32602`` with this message."""


class Verb(NamedTuple):
    message: str
    fields: tuple[Field, ...]
    run: Runner | None = None


# -- checks ------------------------------------------------------------------------------------------------------


def check(params: dict[str, Any], fields: tuple[Field, ...]) -> str:
    """What is wrong with ``params`` for ``fields`` ('' when nothing); ``a|b`` means one of them is needed."""
    for name, kind in fields:
        if "|" in name:
            names = name.split("|")
            if not any(n in params for n in names):
                return f"Invalid params: {' or '.join(names)} is required"
            for n in names:
                if n in params and not _is(params[n], kind):
                    return f"Invalid params: {n} must be {kind}"
            continue
        if name not in params:
            return f"Invalid params: {name} is required"
        if not _is(params[name], kind):
            return f"Invalid params: {name} must be {kind}"
    return ""


def _is(value: Any, kind: str) -> bool:
    if kind == STR:
        return isinstance(value, str) and bool(value)
    if kind == LIST:
        return isinstance(value, list) and bool(value)
    if kind == OBJ:
        return isinstance(value, dict)
    if kind == ANY:
        return value is not None
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return default


def media_seconds(items: list[Any]) -> tuple[float, str]:
    """How long ``play`` media lasts, and why it cannot be played ('' when it can)."""
    total = 0.0
    for i, item in enumerate(items):
        params = item.get("params") if isinstance(item, dict) else None
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in _MEDIA or not isinstance(params, dict):
            return 0.0, f"play[{i}]: type must be one of {', '.join(_MEDIA)}, with params an object"
        if kind == "tts":
            text = params.get("text")
            if not isinstance(text, str) or not text:
                return 0.0, f"play[{i}]: tts needs params.text"
            total += speaking_time(text)
        elif kind == "audio":
            url = params.get("url")
            if not isinstance(url, str) or not url:
                return 0.0, f"play[{i}]: audio needs params.url"
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return 0.0, f"play[{i}]: audio params.url must be an http(s) URL RELAY can fetch, not {url[:100]!r}"
            total += AUDIO_SECONDS
        elif kind == "silence":
            total += _num(params.get("duration"), 1.0)
        else:
            total += _num(params.get("duration"), RINGTONE_SECONDS)
    return total, ""


# -- the handler all verbs share ---------------------------------------------------------------------------------


def _handle(core: EmulatorCore, req: Request) -> dict[str, Any]:
    verb = VERBS[req.method]
    params = req.params
    problem = check(params, verb.fields)
    if problem:
        return error(req.id, INVALID_PARAMS, problem, INVALID_DATA)
    ok: dict[str, Any] = {"code": "200", "message": verb.message, "call_id": params["call_id"]}
    control_id = params.get("control_id")
    if isinstance(control_id, str):
        ok["control_id"] = control_id
    if core.mode == "scripted":
        return result(req.id, ok)
    found = core.calls.find(req.session, params["call_id"])
    if isinstance(found, str):
        return result(req.id, {"code": found, "message": _WHY[found], "call_id": params["call_id"]})
    if verb.run is None:
        return result(req.id, ok)
    try:
        extra = verb.run(core.calls, found, params)
    except Invalid as exc:
        return error(req.id, INVALID_PARAMS, str(exc), INVALID_DATA)
    return result(req.id, ok if extra is None else {**ok, **extra})


def _dial(core: EmulatorCore, req: Request) -> dict[str, Any]:
    """``calling.dial``: no call yet, so no call id; the legs and the ``calling.call.dial`` verdict follow."""
    params = req.params
    problem = check(params, (("tag", STR), ("devices", LIST)))
    if problem:
        return error(req.id, INVALID_PARAMS, problem, INVALID_DATA)
    control = core.calls
    try:
        minutes = _max_duration(params)
        groups = _legs(control, params["devices"], None, req.session, params["tag"])
    except Invalid as exc:
        return error(req.id, INVALID_PARAMS, str(exc), INVALID_DATA)
    if core.mode != "scripted":
        _dial_legs(control, groups, params["tag"], minutes)
    return result(req.id, {"code": "200", "message": "Dialing"})


def _pass(core: EmulatorCore, req: Request) -> dict[str, Any]:
    """``calling.pass``: routing offers the call to the next session (an answered call cannot be passed)."""
    params = req.params
    problem = check(params, CALL)
    if problem:
        return error(req.id, INVALID_PARAMS, problem, INVALID_DATA)
    call_id = params["call_id"]
    if core.mode == "scripted":
        return result(req.id, {"code": "200", "message": "Passing call", "call_id": call_id})
    if core.calls.answered_call(req.session, call_id):
        return result(req.id, {"code": CONFLICT, "message": "Call already answered", "call_id": call_id})
    return core.pass_call(req.session, req.id, call_id)


# -- call lifecycle ----------------------------------------------------------------------------------------------


def _answer(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    minutes = _max_duration(p)
    c.answer(call)
    c.limit(call, minutes)


def _max_duration(p: dict[str, Any]) -> float | None:
    """A verb's ``max_duration`` in minutes (as the SDK documents it); None or 0: no limit."""
    value = p.get("max_duration")
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise Invalid("Invalid params: max_duration must be a positive number of minutes")
    return float(value)


def _end(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    reason = p.get("reason", "hangup")
    if reason not in END_REASONS:
        raise Invalid(f"Invalid params: reason must be one of {', '.join(END_REASONS)}")
    c.hang_up(call, reason)


def _soon(c: CallControl, fn: Callable[[], None]) -> None:
    c.later(0.0, fn)


def _action(call: Call, p: dict[str, Any], *kinds: str) -> Action:
    action = call.actions.get(p["control_id"])
    if action is None or action.kind not in kinds or action.done:
        raise _NoAction
    return action


class _NoAction(LookupError):
    pass


def _on_action(run: Callable[[CallControl, Action, dict[str, Any]], None], *kinds: str) -> Runner:
    """A runner for a sub-command (``play.pause``...): the action it names, or a ``404`` result."""

    def runner(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any] | None:
        try:
            action = _action(call, p, *kinds)
        except _NoAction:
            return {"code": "404", "message": "Action not found"}
        run(c, action, p)
        return None

    return runner


def _stop(c: CallControl, action: Action, p: dict[str, Any]) -> None:
    """Stop now (nothing of the action runs any more); its terminal event follows the result."""
    c.finish(action)
    _soon(c, lambda: action.on_end(action, "stop"))


def _pause(c: CallControl, action: Action, p: dict[str, Any]) -> None:
    if action.left is not None:
        return
    c.pause(action)
    if action.state == "recording":
        action.data["heard"] += (c.core.clock() - action.data["since"]) * c.core.speed
    if action.state in ("playing", "recording"):
        action.data["was"] = action.state
        action.state = "paused"
        event = _RECORD if action.kind == "record" else _PLAY
        _soon(c, lambda: c.action_event(action, event, state="paused"))


def _resume(c: CallControl, action: Action, p: dict[str, Any]) -> None:
    if action.left is None:
        return
    c.resume(action)
    if action.state == "paused":
        action.state = action.data.pop("was")
        if action.state == "recording":
            action.data["since"] = c.core.clock()
        event = _RECORD if action.kind == "record" else _PLAY
        state = action.state
        _soon(c, lambda: c.action_event(action, event, state=state))


def _nothing(c: CallControl, action: Action, p: dict[str, Any]) -> None:
    """A volume change: the action goes on as it was."""


# -- media -------------------------------------------------------------------------------------------------------


def _media_error(c: CallControl, action: Action, why: str) -> None:
    c.action_event(action, _PLAY, state="error")
    c.action_event(action, "calling.error", code="400", message=why)


def _play(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    seconds, bad = media_seconds(p["play"])
    loop = p.get("loop")
    forever = loop == 0
    if isinstance(loop, int) and loop > 1:
        seconds *= loop

    def end(action: Action, why: str) -> None:
        c.action_event(action, _PLAY, state="finished")

    def start(action: Action) -> None:
        if bad:
            _media_error(c, action, bad)
            c.finish(action)
            return
        action.state = "playing"
        c.action_event(action, _PLAY, state="playing")
        if not forever:
            c.timer(action, seconds, done)

    def done(action: Action) -> None:
        c.action_event(action, _PLAY, state="finished")
        c.finish(action)

    c.timer(c.start_action(call, p["control_id"], "play", end), EVENT_GAP, start)


def _record(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any]:
    audio = p["record"].get("audio")
    audio = audio if isinstance(audio, dict) else {}
    initial = _num(audio.get("initial_timeout"), RECORD_INITIAL)
    silence = _num(audio.get("end_silence_timeout"), RECORD_SILENCE)
    rec_id, url = c.new_recording()
    say = call.far_end.say

    def end(action: Action, why: str) -> None:
        heard = action.data["heard"]
        if action.state == "recording":
            heard += (c.core.clock() - action.data["since"]) * c.core.speed
        if not say or action.state == "":
            c.action_event(action, _RECORD, state="no_input")
            return
        duration = round(max(heard, 0.1), 2)
        c.keep_recording(rec_id, duration)
        record = {"url": url, "duration": duration, "size": int(duration * 16_000), "format": "wav"}
        c.action_event(
            action, _RECORD, state="finished", url=url, duration=duration, size=record["size"], record=record
        )

    def start(action: Action) -> None:
        action.state = "recording"
        action.data["since"] = c.core.clock()
        c.action_event(action, _RECORD, state="recording")
        c.timer(action, speaking_time(say) + silence if say else initial, done)

    def done(action: Action) -> None:
        c.stop(action, "done")

    action = c.start_action(call, p["control_id"], "record", end)
    action.data["heard"] = 0.0
    c.timer(action, EVENT_GAP, start)
    return {"url": url}


def far_end_input(fe: FarEnd, digits: Any, speech: Any, initial: float) -> tuple[float, dict[str, Any]]:
    """What the far end does when prompted: how long it takes and the collect ``result`` it comes to."""
    if isinstance(digits, dict) and fe.press:
        terminators = digits.get("terminators", "#")
        terminators = terminators if isinstance(terminators, str) else "#"
        limit = digits.get("max")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
        got, terminator = "", ""
        for ch in fe.press:
            if ch in terminators:
                terminator = ch
                break
            got += ch
            if limit is not None and len(got) >= limit:
                break
        delay = PRESS_AFTER + DIGIT_GAP * (len(got) + len(terminator))
        if not got:
            return delay, {"type": "no_match"}
        return delay, {"type": "digit", "params": {"digits": got, "terminator": terminator}}
    if isinstance(speech, dict) and fe.say:
        delay = PRESS_AFTER + speaking_time(fe.say) + _num(speech.get("end_silence_timeout"), 1.0)
        return delay, {"type": "speech", "params": {"text": fe.say, "confidence": 92.5}}
    return initial, {"type": "no_input"}


def _collected(c: CallControl, action: Action, res: dict[str, Any], partial: bool, continuous: bool) -> None:
    """The far end's input: its result (a speech guess first, with ``partial``). A ``continuous`` collect goes on
    listening, its result marked ``final`` (that result is whole), until it is stopped or the call ends."""
    if partial and res["type"] == "speech":
        text = res["params"]["text"]
        guess = {"type": "speech", "params": {"text": text[: max(1, len(text) // 2)], "confidence": 40.0}}
        c.action_event(action, _COLLECT, state="collecting", final=False, result=guess)
    if continuous:
        action.data["result"] = res
        c.action_event(action, _COLLECT, state="collecting", final=True, result=res)
        return
    if partial and res["type"] == "speech":
        c.action_event(action, _COLLECT, state="finished", final=True, result=res)
    else:
        c.action_event(action, _COLLECT, result=res)
    c.finish(action)


def _collect_end(c: CallControl) -> Callable[[Action, str], None]:
    def end(action: Action, why: str) -> None:
        if action.state in ("playing", "paused"):
            c.action_event(action, _PLAY, state="finished")
        last = action.data.get("result")
        if last is not None:  # a continuous collect that heard something: its last result, now the final one
            c.action_event(action, _COLLECT, state="finished", final=True, result=last)
        else:
            c.action_event(action, _COLLECT, state="finished", result={"type": "no_input"})

    return end


def _collect(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    initial = _num(p.get("initial_timeout"), NO_INPUT)
    delay, res = far_end_input(call.far_end, p.get("digits"), p.get("speech"), initial)
    action = c.start_action(call, p["control_id"], "collect", _collect_end(c))
    action.state = "collecting"
    partial, continuous = p.get("partial_results") is True, p.get("continuous") is True
    step = lambda a: _collected(c, a, res, partial, continuous)  # noqa: E731
    if res["type"] == "no_input" and p.get("start_input_timers") is False:
        action.data["waiting"] = (delay, step)
        return
    c.timer(action, delay, step)


def _start_input_timers(c: CallControl, action: Action, p: dict[str, Any]) -> None:
    waiting = action.data.pop("waiting", None)
    if waiting is not None:
        c.timer(action, *waiting)


def _play_and_collect(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    seconds, bad = media_seconds(p["play"])
    spec = p["collect"]
    initial = _num(spec.get("initial_timeout"), NO_INPUT)
    delay, res = far_end_input(call.far_end, spec.get("digits"), spec.get("speech"), initial)
    partial, continuous = spec.get("partial_results") is True, spec.get("continuous") is True

    def start(action: Action) -> None:
        if bad:
            _media_error(c, action, bad)
            c.action_event(action, _COLLECT, result={"type": "error"})
            c.finish(action)
            return
        action.state = "playing"
        c.action_event(action, _PLAY, state="playing")
        c.timer(action, seconds, prompted)

    def prompted(action: Action) -> None:
        action.state = "collecting"
        c.action_event(action, _PLAY, state="finished")
        c.timer(action, delay, lambda a: _collected(c, a, res, partial, continuous))

    c.timer(c.start_action(call, p["control_id"], "play_and_collect", _collect_end(c)), EVENT_GAP, start)


def _detect(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    kind = p["detect"].get("type")
    if kind not in ("machine", "fax", "digit"):
        raise Invalid("Invalid params: detect.type must be one of machine, fax, digit")
    timeout = _num(p.get("timeout"), DETECT_TIMEOUT)
    fe = call.far_end
    ev = "calling.call.detect"

    def finished(action: Action, why: str = "") -> None:
        c.action_event(action, ev, state="finished", detect={"type": kind, "params": {"event": "finished"}})
        c.finish(action)

    def found(what: str, then: float) -> Callable[[Action], None]:
        def step(action: Action) -> None:
            c.action_event(action, ev, detect={"type": kind, "params": {"event": what}})
            if what == "MACHINE":
                c.timer(action, speaking_time(fe.say or "Please leave a message"), found("READY", EVENT_GAP))
            else:
                c.timer(action, then, finished)

        return step

    action = c.start_action(call, p["control_id"], "detect", finished)
    if kind == "machine":
        c.timer(action, 2.0, found("MACHINE" if fe.machine else "HUMAN", EVENT_GAP))
    elif kind == "fax" and fe.fax:
        c.timer(action, 1.5, found("CED", EVENT_GAP))
    elif kind == "digit" and fe.press:
        c.timer(action, PRESS_AFTER + DIGIT_GAP * len(fe.press), found(fe.press, EVENT_GAP))
    else:
        c.timer(action, timeout, finished)


# -- legs: connect and dial --------------------------------------------------------------------------------------


def _legs(c: CallControl, devices: Any, parent: Call | None, owner: Session | None, tag: str) -> list[list[Call]]:
    """The devices as groups of legs (outer list in turn, inner at once), each with its number's far end."""
    groups: list[list[Call]] = []
    count = 0
    for i, group in enumerate(devices):
        if not isinstance(group, list) or not group:
            raise Invalid(f"Invalid params: devices[{i}] must be a non-empty list of devices")
        legs = []
        for j, device in enumerate(group):
            where = f"devices[{i}][{j}]"
            if not isinstance(device, dict) or not isinstance(device.get("type"), str):
                raise Invalid(f"Invalid params: {where} must be an object with a type")
            params = device.get("params")
            if not isinstance(params, dict):
                raise Invalid(f"Invalid params: {where}.params must be an object")
            to = params.get("to_number", params.get("to"))
            if not isinstance(to, str) or not to:
                raise Invalid(f"Invalid params: {where}.params.to_number must be a non-empty string")
            count += 1
            if count > MAX_DEVICES:
                raise Invalid(f"Invalid params: devices: at most {MAX_DEVICES} devices")
            own = "" if parent is None else parent.to_number if parent.direction == "inbound" else parent.from_number
            frm = params.get("from_number", params.get("from", own))
            frm = frm if isinstance(frm, str) else own
            # A phone leg's device names both numbers; any other (sip: {to, from}) comes back as the app gave it.
            shown = {**params, "from_number": frm, "to_number": to} if device["type"] == "phone" else dict(params)
            leg_device = {"type": device["type"], "params": shown}
            leg = Call(
                c.new_id(),
                c.core.node_id,
                "outbound",
                frm,
                to,
                c.core.far_ends.for_number(to),
                tag=tag,
                device=leg_device,
            )
            leg.parent = parent
            if owner is not None:
                c.own(leg, owner)
            legs.append(leg)
        groups.append(legs)
    return groups


def _connect(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any] | None:
    if call.bridge is not None or (call.ringing is not None and not call.ringing.cancelled):
        return {"code": CONFLICT, "message": "Call is already connected or connecting"}
    tag = p.get("tag") if isinstance(p.get("tag"), str) else ""
    minutes = _max_duration(p)
    groups = _legs(c, p["devices"], call, call.session, tag or "")
    ev = "calling.call.connect"

    def answered(leg: Call) -> None:
        if not call.live:
            c.end(leg, "hangup")
            return
        c.limit(leg, minutes)  # the bridged leg: at its end the call is disconnected and carries on
        call.bridge, leg.bridge = leg, call
        c.call_event(call, ev, connect_state="connected", peer=leg.peer_info())

    def failed(reason: str) -> None:
        why = {"noAnswer": "no_answer"}.get(reason, reason)
        c.call_event(call, ev, connect_state="failed", failed_reason=why)

    def begin() -> None:
        if call.live:
            c.call_event(call, ev, connect_state="connecting", peer=groups[0][0].peer_info())
            call.ringing = c.ring(groups, answered, failed)

    c.later(EVENT_GAP, begin)
    return None


def _dial_legs(c: CallControl, groups: list[list[Call]], tag: str, minutes: float | None) -> None:
    node = c.core.node_id
    dialing = False

    def created(leg: Call) -> None:
        nonlocal dialing
        if not dialing:
            dialing = True
            c.event(leg, DIAL_EVENT, {"tag": tag, "node_id": node, "dial_state": "dialing"})

    def answered(leg: Call) -> None:
        c.limit(leg, minutes)
        winner = {"call_id": leg.call_id, "node_id": leg.node_id, "tag": tag, "device": leg.device, "dial_winner": True}
        c.event(leg, DIAL_EVENT, {"tag": tag, "node_id": node, "dial_state": "answered", "call": winner})

    def failed(reason: str) -> None:
        c.event(groups[-1][-1], DIAL_EVENT, {"tag": tag, "node_id": node, "dial_state": "failed"})

    def begin() -> None:
        c.ring(groups, answered, failed, created)

    c.later(EVENT_GAP, begin)


def _disconnect(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    if call.bridge is not None:
        _soon(c, lambda: c.unbridge(call))


# -- the other verbs with events ---------------------------------------------------------------------------------


def _running(
    event: str, start: dict[str, Any], end: dict[str, Any], after: float | None = None, kind: str = ""
) -> Runner:
    """An action that reports ``start`` params, then ``end`` params when stopped, the call ends, or ``after``."""

    def runner(c: CallControl, call: Call, p: dict[str, Any]) -> None:
        def finish(action: Action, why: str = "") -> None:
            c.action_event(action, event, **end)
            c.finish(action)

        def begin(action: Action) -> None:
            c.action_event(action, event, **start)
            if after is not None:
                c.timer(action, _num(p.get("timeout"), after), finish)

        c.timer(c.start_action(call, p["control_id"], kind or event.rsplit(".", 1)[1], finish), EVENT_GAP, begin)

    return runner


def _send_digits(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    if not set(p["digits"]) <= _DTMF:
        raise Invalid("Invalid params: digits may hold only 0-9, *, #, A-D and w/W pauses")

    def done(action: Action, why: str = "") -> None:
        c.action_event(action, "calling.call.send_digits", state="finished")
        c.finish(action)

    c.timer(c.start_action(call, p["control_id"], "send_digits", done), 0.2 + 0.1 * len(p["digits"]), done)


def _tap(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any]:
    body = {"tap": p["tap"], "device": p["device"]}
    _running("calling.call.tap", {**body, "state": "tapping"}, {**body, "state": "finished"})(c, call, p)
    return {
        "source_device": {"type": "rtp", "params": {"addr": "127.0.0.1", "port": 20_000, "codec": "PCMU", "ptime": 20}}
    }


def _stream(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    url = p["url"]
    name = p.get("name") if isinstance(p.get("name"), str) else f"stream-{p['control_id'][:8]}"
    body = {"url": url, "name": name}
    if not url.startswith(("ws://", "wss://")):

        def refuse(action: Action) -> None:
            c.action_event(action, "calling.error", code="400", message="stream url must be ws:// or wss://")
            c.stop(action)

        ended = {**body, "state": "finished"}
        action = c.start_action(
            call, p["control_id"], "stream", lambda a, why: c.action_event(a, "calling.call.stream", **ended)
        )
        c.timer(action, EVENT_GAP, refuse)
        return
    _running("calling.call.stream", {**body, "state": "streaming"}, {**body, "state": "finished"})(c, call, p)


def _transcribe(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    ev = "calling.call.transcribe"

    def finish(action: Action, why: str = "") -> None:
        duration = round(max((c.core.clock() - action.data["since"]) * c.core.speed, 0.1), 2)
        rec_id, url = c.new_recording()
        c.keep_recording(rec_id, duration)
        size = int(duration * 16_000)
        c.action_event(action, ev, state="finished", url=url, recording_id=rec_id, duration=duration, size=size)

    def begin(action: Action) -> None:
        action.data["since"] = c.core.clock()
        c.action_event(action, ev, state="transcribing")

    action = c.start_action(call, p["control_id"], "transcribe", finish)
    action.data["since"] = c.core.clock()
    c.timer(action, EVENT_GAP, begin)


def _flag(event: str, **params: Any) -> Runner:
    """A verb that only reports a change of the call (denoise, hold) once, after its result."""

    def runner(c: CallControl, call: Call, p: dict[str, Any]) -> None:
        _soon(c, lambda: c.call_event(call, event, **params) if call.live else None)

    return runner


def _echo(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    ev = "calling.call.echo"

    def finish(action: Action, why: str = "") -> None:
        c.call_event(call, ev, state="finished")
        c.finish(action)

    def begin(action: Action) -> None:
        c.call_event(call, ev, state="echoing")
        c.timer(action, _num(p.get("timeout"), ECHO_SECONDS), finish)

    c.timer(c.start_action(call, f"echo:{c.new_id()}", "echo", finish), EVENT_GAP, begin)


def _pay(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    ev = "calling.call.pay"
    card = {"payment_method": "credit-card", "payment_card_type": "visa", "payment_card_number": "************1111"}

    def failed(action: Action, why: str) -> None:
        c.action_event(action, ev, state="error", **{"for": "payment-failed"})

    def paid(action: Action) -> None:
        if call.far_end.press:
            c.action_event(action, ev, state="finished", **card, **{"for": "payment-completed"})
        else:
            failed(action, "no input")
        c.finish(action)

    c.timer(c.start_action(call, p["control_id"], "pay", failed), PAY_SECONDS, paid)


def _queue_enter(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    name = p["queue_name"]
    queue_id, members = c.queues.setdefault(name, (c.new_id(), []))
    ev = "calling.call.queue"

    def body(action: Action, status: str, position: int) -> None:
        c.action_event(
            action, ev, status=status, id=queue_id, name=name, position=position, size=len(members), avg_time=0
        )

    def leave(action: Action, why: str) -> None:
        if call.call_id in members:
            members.remove(call.call_id)
        if not members and c.queues.get(name, ("", None))[1] is members:
            del c.queues[name]
        body(action, "dequeue" if why == "dequeue" else "leave", 0)

    def enqueued(action: Action) -> None:
        members.append(call.call_id)
        body(action, "enqueue", len(members))
        c.timer(action, QUEUE_WAIT, lambda a: c.stop(a, "dequeue"))

    action = c.start_action(call, p["control_id"], "queue", leave)
    action.data["name"] = name
    c.timer(action, EVENT_GAP, enqueued)


def _queue_leave(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any] | None:
    action = next((a for a in call.actions.values() if a.kind == "queue" and a.data["name"] == p["queue_name"]), None)
    if action is None:
        return {"code": "404", "message": "Call is not in that queue"}
    _stop(c, action, p)
    return None


def _fax(direction: str) -> Runner:
    def runner(c: CallControl, call: Call, p: dict[str, Any]) -> None:
        ev = "calling.call.fax"
        identity, remote = (call.to_number, call.from_number)
        if call.direction != "inbound":
            identity, remote = remote, identity
        fax_id, document = ("", p.get("document")) if direction == "send" else c.new_fax()

        def report(action: Action, ok: bool, text: str) -> None:
            fax = fax_finished(direction, identity, remote, document, ok, text, 1 if ok else 0)
            c.action_event(action, ev, state="finished" if ok else "error", fax=fax)

        def done(action: Action) -> None:
            if fax_id and call.far_end.fax:
                c.keep_fax(fax_id, 1)
            report(action, call.far_end.fax, "OK" if call.far_end.fax else "No fax machine on the far end")
            c.finish(action)

        action = c.start_action(
            call, p["control_id"], f"{direction}_fax", lambda a, why: report(a, False, "Call disconnected")
        )
        c.timer(action, FAX_SECONDS, done)

    return runner


def _refer(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    params = p["device"].get("params")
    to = params.get("to", "") if isinstance(params, dict) else ""

    def refer() -> None:
        if call.live:
            c.call_event(
                call,
                "calling.call.refer",
                state="success",
                sip_refer_to=to,
                sip_refer_response_code="202",
                sip_notify_response_code="200",
            )
            c.end(call, "hangup")

    c.later(EVENT_GAP, refer)


def _join_conference(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any]:
    name = p["name"]
    conf_id, members = c.conferences.setdefault(name, (c.new_id(), set()))
    ev = "calling.conference"

    def body(status: str, **extra: Any) -> None:
        c.call_event(call, ev, name=name, conference_id=conf_id, status=status, size=len(members), **extra)

    def leave(action: Action, why: str) -> None:
        members.discard(call.call_id)
        body("participant-leave", muted=False, hold=False)
        if not members:
            c.conferences.pop(name, None)
            body("conference-end", reason_ended="last-participant-left")

    def join(action: Action) -> None:
        members.add(call.call_id)
        body("participant-join", muted=p.get("muted") is True, hold=False)

    action = c.start_action(call, f"conference:{conf_id}", "conference", leave)
    c.timer(action, EVENT_GAP, join)
    return {"conference_id": conf_id}


def _leave_conference(c: CallControl, call: Call, p: dict[str, Any]) -> dict[str, Any] | None:
    action = call.actions.get(f"conference:{p['conference_id']}")
    if action is None:
        return {"code": "404", "message": "Call is not in that conference"}
    _stop(c, action, p)
    return None


def _ai(c: CallControl, call: Call, p: dict[str, Any]) -> None:
    c.start_action(call, p["control_id"], "ai", lambda a, why: c.action_event(a, "calling.call.ai", state="finished"))


# -- the table ---------------------------------------------------------------------------------------------------

_PLAYS = ("play",)
_COLLECTS = ("collect", "play_and_collect")
VERBS: Mapping[str, Verb] = MappingProxyType(
    {
        "calling.answer": Verb("Answered", CALL, _answer),
        "calling.end": Verb("Disconnecting call", CALL, _end),
        "calling.play": Verb("Playing", (*ACTION, ("play", LIST)), _play),
        "calling.play.pause": Verb("Pausing", ACTION, _on_action(_pause, "play")),
        "calling.play.resume": Verb("Resuming", ACTION, _on_action(_resume, "play")),
        "calling.play.volume": Verb("Volume set", (*ACTION, ("volume", NUM)), _on_action(_nothing, "play")),
        "calling.play.stop": Verb("Stopping", ACTION, _on_action(_stop, "play")),
        "calling.record": Verb("Recording", (*ACTION, ("record", OBJ)), _record),
        "calling.record.pause": Verb("Pausing", ACTION, _on_action(_pause, "record")),
        "calling.record.resume": Verb("Resuming", ACTION, _on_action(_resume, "record")),
        "calling.record.stop": Verb("Stopping", ACTION, _on_action(_stop, "record")),
        "calling.collect": Verb("Collecting", (*ACTION, ("digits|speech", OBJ)), _collect),
        "calling.collect.stop": Verb("Stopping", ACTION, _on_action(_stop, "collect")),
        "calling.collect.start_input_timers": Verb(
            "Input timers started", ACTION, _on_action(_start_input_timers, *_COLLECTS)
        ),
        "calling.play_and_collect": Verb(
            "Playing and collecting", (*ACTION, ("play", LIST), ("collect", OBJ)), _play_and_collect
        ),
        "calling.play_and_collect.stop": Verb("Stopping", ACTION, _on_action(_stop, "play_and_collect")),
        "calling.play_and_collect.volume": Verb(
            "Volume set", (*ACTION, ("volume", NUM)), _on_action(_nothing, "play_and_collect")
        ),
        "calling.play_and_collect.pause": Verb("Pausing", ACTION, _on_action(_pause, "play_and_collect")),
        "calling.play_and_collect.resume": Verb("Resuming", ACTION, _on_action(_resume, "play_and_collect")),
        "calling.detect": Verb("Detect started", (*ACTION, ("detect", OBJ)), _detect),
        "calling.detect.stop": Verb("Stopping", ACTION, _on_action(_stop, "detect")),
        "calling.connect": Verb("connecting", (*CALL, ("devices", LIST)), _connect),
        "calling.disconnect": Verb("Disconnecting", CALL, _disconnect),
        "calling.send_digits": Verb("Sending Digits", (*ACTION, ("digits", STR)), _send_digits),
        "calling.tap": Verb("Tap started", (*ACTION, ("tap", OBJ), ("device", OBJ)), _tap),
        "calling.tap.stop": Verb("Stopping", ACTION, _on_action(_stop, "tap")),
        "calling.stream": Verb("Stream started", (*ACTION, ("url", STR)), _stream),
        "calling.stream.stop": Verb("Stopping", ACTION, _on_action(_stop, "stream")),
        "calling.transcribe": Verb("Transcribe started", ACTION, _transcribe),
        "calling.transcribe.stop": Verb("Stopping", ACTION, _on_action(_stop, "transcribe")),
        "calling.denoise": Verb("Denoise started", CALL, _flag("calling.call.denoise", denoised=True)),
        "calling.denoise.stop": Verb("Denoise stopped", CALL, _flag("calling.call.denoise", denoised=False)),
        "calling.hold": Verb("Call on hold", CALL, _flag("calling.call.hold", state="hold")),
        "calling.unhold": Verb("Call off hold", CALL, _flag("calling.call.hold", state="unhold")),
        "calling.echo": Verb("Echo started", CALL, _echo),
        "calling.pay": Verb("Pay started", (*ACTION, ("payment_connector_url", STR)), _pay),
        "calling.pay.stop": Verb("Stopping", ACTION, _on_action(_stop, "pay")),
        "calling.queue.enter": Verb("Entering queue", (*ACTION, ("queue_name", STR)), _queue_enter),
        "calling.queue.leave": Verb("Leaving queue", (*CALL, ("queue_name", STR)), _queue_leave),
        "calling.send_fax": Verb("Sending fax", (*ACTION, ("document", STR)), _fax("send")),
        "calling.send_fax.stop": Verb("Stopping", ACTION, _on_action(_stop, "send_fax")),
        "calling.receive_fax": Verb("Receiving fax", ACTION, _fax("receive")),
        "calling.receive_fax.stop": Verb("Stopping", ACTION, _on_action(_stop, "receive_fax")),
        "calling.refer": Verb("Referring", (*CALL, ("device", OBJ)), _refer),
        "calling.transfer": Verb("Transferring", (*CALL, ("dest", STR))),
        "calling.join_conference": Verb("Joining conference", (*CALL, ("name", STR)), _join_conference),
        "calling.leave_conference": Verb("Leaving conference", (*CALL, ("conference_id", STR)), _leave_conference),
        "calling.ai": Verb("AI agent started", ACTION, _ai),
        "calling.ai.stop": Verb("Stopping", ACTION, _on_action(_stop, "ai")),
        "calling.ai_message": Verb("Message sent", CALL),
        "calling.ai_hold": Verb("AI on hold", CALL),
        "calling.ai_unhold": Verb("AI off hold", CALL),
        "calling.amazon_bedrock": Verb("Amazon Bedrock agent started", CALL),
        "calling.bind_digit": Verb("Digit bound", (*CALL, ("digits", STR), ("bind_method", STR))),
        "calling.clear_digit_bindings": Verb("Digit bindings cleared", CALL),
        "calling.live_transcribe": Verb("Live transcribe updated", (*CALL, ("action", ANY))),
        "calling.live_translate": Verb("Live translate updated", (*CALL, ("action", ANY))),
        "calling.join_room": Verb("Joining room", (*CALL, ("name", STR))),
        "calling.leave_room": Verb("Leaving room", CALL),
        "calling.user_event": Verb("User event sent", CALL),
    }
)
"""Every call verb but ``calling.dial`` and ``calling.pass``, by method."""

CALL_METHODS: Mapping[str, Handler] = MappingProxyType(
    {**dict.fromkeys(VERBS, _handle), "calling.dial": _dial, CALL_PASS: _pass}
)
"""The call-control part of the core's method table."""
