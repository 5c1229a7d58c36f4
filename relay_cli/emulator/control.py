"""The control plane's routes without I/O: a request's method, target and body in, a status and a body out.

The routes are SignalWire ``mock_relay``'s (EMULATOR.md section 6) under ``/__mock__/``, plus the project's own
under ``/relay/``: calls and messages from far ends, the far-end rules, recordings and faxes. What needs the network
or the clock of an event loop (writing a pushed frame, sleeping, waiting for a frame from the app) is asked of a
:class:`Wire`, which the server implements; the routes are coroutines only so they can wait on it.

Every answer is JSON but a recording's WAV and a fax's PDF. Bad input is a 400 whose ``error`` says what is wrong;
an unknown path a 404, a known path with the wrong method a 405; a bug a 500 with its exception's name, logged,
never a traceback.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from relay_cli.emulator.farends import FarEndError, parse_far_end, parse_far_ends
from relay_cli.emulator.media import pdf, wav
from relay_cli.emulator.scenarios import (
    MAX_DELAY_MS,
    ScenarioError,
    Scenarios,
    parse_dial,
    parse_events,
)
from relay_cli.event import json_type
from relay_cli.protocol import APP_TO_RELAY, Kind, redact

if TYPE_CHECKING:
    from relay_cli.emulator.sessions import EmulatorCore

__all__ = [
    "JSON_TYPE",
    "MAX_STEPS",
    "PDF_TYPE",
    "WAV_TYPE",
    "ControlPlane",
    "RecvWatch",
    "Response",
    "Wire",
    "json_response",
]

JSON_TYPE = "application/json"
WAV_TYPE = "audio/wav"
PDF_TYPE = "application/pdf"
MAX_STEPS = 1000
"""Steps in one ``scenario_play``."""
DEFAULT_TIMEOUT_MS = 5000
INBOUND_DELAY_MS = 50
CALLER_FIELDS = ("press", "say", "hangup_after", "machine", "fax")
"""What a caller started by ``POST /relay/calls`` may do, beyond the default far end."""
DEFAULT_FROM = "+15550100001"
NO_SESSION = "no such session"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, orjson.dumps(value), JSON_TYPE, headers)


class RecvWatch(Protocol):
    """Frames from apps seen since the watch began, for ``expect_recv``."""

    async def expect(self, method: str, session_id: str | None, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the next request of ``method`` (from that session, if given)."""
        ...

    def close(self) -> None: ...


class Wire(Protocol):
    """What the routes need from the server around them."""

    @property
    def ws_port(self) -> int: ...

    async def push_frame(self, frame: dict[str, Any], session_id: str | None) -> list[str]:
        """Send ``frame`` verbatim to that session, or to every connected one; the session ids it went to.
        LookupError when ``session_id`` names no connected session."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def watch(self) -> RecvWatch: ...

    def sessions(self) -> list[dict[str, Any]]:
        """``{id, connection_id, connected_at, peer_addr, protocol_string}`` of each connected session."""
        ...


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Call:
    """What a route is called with."""

    groups: tuple[str, ...]
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        if not self.body.strip():
            raise _BadRequest("body: expected JSON, got an empty body")
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise _BadRequest(f"body is not JSON: {exc}") from None

    def object(self) -> dict[str, Any]:
        value = self.json()
        if not isinstance(value, dict):
            raise _BadRequest(f"body: must be a JSON object, not {_type(value)}")
        return value

    def session_id(self, body: dict[str, Any] | None = None) -> str | None:
        values = self.query.get("session_id")
        if values:
            return values[-1]
        if body is not None and body.get("session_id") is not None:
            return _optional(body, "session_id")
        return None


_Route = Callable[["ControlPlane", _Call], Coroutine[Any, Any, Response]]


class ControlPlane:
    """The routes of one emulator's control plane; :meth:`handle` answers one request."""

    def __init__(self, core: EmulatorCore, wire: Wire) -> None:
        self.core = core
        self.wire = wire
        self.scenarios = Scenarios(core)
        core.after_request.append(self.scenarios.after_request)

    async def handle(self, method: str, target: str, body: bytes) -> Response:
        """Answer one request; never raises."""
        try:
            parts = urlsplit(target)
            path = unquote(parts.path).rstrip("/") or "/"
            query = parse_qs(parts.query, keep_blank_values=True)
        except ValueError:
            return json_response(400, {"error": f"malformed request target: {target[:200]!r}"})
        for pattern, methods in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            route = methods.get(method)
            if route is None:
                allowed = ", ".join(methods)
                return json_response(
                    405,
                    {"error": f"method not allowed: {method} {path} (allowed: {allowed})"},
                    (("allow", allowed),),
                )
            try:
                return await route(self, _Call(match.groups(), query, body))
            except _BadRequest as exc:
                return json_response(exc.status, {"error": str(exc)})
            except Exception as exc:
                self.core.log(f"control plane: internal error in {method} {path}: {exc!r}")
                return json_response(500, {"error": f"internal error ({type(exc).__name__}) in {method} {path}"})
        return json_response(404, {"error": f"no such route: {method} {path[:200]}"})

    # -- mock_relay: state ----------------------------------------------------------------------------------

    async def health(self, call: _Call) -> Response:
        core = self.core
        return json_response(
            200,
            {
                "status": "ok",
                "ws_port": self.wire.ws_port,
                "schemas_loaded": len(core.methods),
                "journal_entries": len(core.journal),
                "mode": core.mode,
                "sessions": sum(1 for s in core.sessions.values() if s.conn is not None),
                "scenarios_queued": len(self.scenarios),
            },
        )

    async def journal(self, call: _Call) -> Response:
        return json_response(200, journal_entries(self.core, call.session_id()))

    async def journal_reset(self, call: _Call) -> Response:
        self.core.journal.clear()
        return json_response(200, {"status": "ok"})

    async def sessions(self, call: _Call) -> Response:
        return json_response(200, {"sessions": self.wire.sessions()})

    # -- mock_relay: sending ----------------------------------------------------------------------------------

    async def push(self, call: _Call) -> Response:
        body = call.object()
        frame = body.get("frame")
        if not isinstance(frame, dict):
            raise _BadRequest("frame: must be an object (a whole JSON-RPC frame)")
        try:
            sent_to = await self.wire.push_frame(frame, call.session_id(body))
        except LookupError:
            return json_response(404, {"sent_to": [], "count": 0, "error": NO_SESSION})
        return json_response(200, {"sent_to": sent_to, "count": len(sent_to)})

    async def inbound_call(self, call: _Call) -> Response:
        """Offer a call to the sessions (all, or the one named) as bare events: nothing tracks it afterwards."""
        core = self.core
        body = call.object()
        call_id = _optional(body, "call_id") or str(uuid.uuid4())
        from_number, to_number = _required(body, "from_number"), _required(body, "to_number")
        context = _optional(body, "context") or "default"
        states = body.get("auto_states", ["created"])
        if not isinstance(states, list) or not states or not all(isinstance(s, str) and s for s in states):
            raise _BadRequest("auto_states: must be a non-empty array of call states")
        if len(states) > 100:
            raise _BadRequest("auto_states: at most 100 states")
        delay = _number(body, "delay_ms", INBOUND_DELAY_MS, MAX_DELAY_MS) / 1000
        session_id = call.session_id(body)
        if session_id is not None:
            session = core.session_by_id(session_id)
            if session is None or session.conn is None:
                return json_response(404, {"sent_to": [], "count": 0, "error": NO_SESSION})
            targets = [session]
        else:
            targets = sorted((s for s in core.sessions.values() if s.conn is not None), key=lambda s: s.index)
        params = {
            "call_id": call_id,
            "node_id": core.node_id,
            "tag": "",
            "direction": "inbound",
            "device": {"type": "phone", "params": {"from_number": from_number, "to_number": to_number}},
            "context": context,
        }
        for session in targets:
            for i, state in enumerate(states):
                event_type = "calling.call.receive" if i == 0 else "calling.call.state"

                def send(session: Any = session, event_type: str = event_type, state: str = state) -> None:
                    payload = {"event_type": event_type, "timestamp": core.wall(), "space_id": core.space_id}
                    event = {**payload, "context": context, "params": {**params, "call_state": state}}
                    core.deliver(session, event)

                if i == 0:
                    send()
                else:
                    core.later(i * delay, send, scaled=False)
        sent_to = [s.sessionid for s in targets]
        return json_response(
            200, {"sent_to": sent_to, "count": len(sent_to), "call_id": call_id, "states_emitted": states}
        )

    # -- mock_relay: scenarios ----------------------------------------------------------------------------------

    async def scenarios_list(self, call: _Call) -> Response:
        return json_response(200, self.scenarios.to_json())

    async def scenarios_reset(self, call: _Call) -> Response:
        self.scenarios.reset()
        return json_response(200, {"status": "ok"})

    async def scenario_dial(self, call: _Call) -> Response:
        value = call.json()
        try:
            dial = parse_dial(value)
            self.scenarios.queue_dial(dial, call.session_id())
        except ScenarioError as exc:
            raise _BadRequest(str(exc)) from None
        return json_response(200, {"status": "ok", "tag": dial.tag})

    async def scenario_method(self, call: _Call) -> Response:
        method = call.groups[0]
        try:
            events = parse_events(method, call.json())
            queued = self.scenarios.queue(method, events, call.session_id())
        except ScenarioError as exc:
            raise _BadRequest(str(exc)) from None
        return json_response(200, {"status": "ok", "method": method, "events_queued": queued})

    async def scenario_play(self, call: _Call) -> Response:
        steps = _parse_steps(call.json())
        watch = self.wire.watch()
        try:
            for i, (kind, arg) in enumerate(steps):
                if kind == "sleep_ms":
                    await self.wire.sleep(arg / 1000)
                elif kind == "push":
                    try:
                        await self.wire.push_frame(arg["frame"], arg.get("session_id"))
                    except LookupError:
                        body = {"status": "error", "at_step": i, "error": NO_SESSION, "steps_completed": i}
                        return json_response(404, body)
                elif not await watch.expect(arg["method"], arg.get("session_id"), arg["timeout_ms"] / 1000):
                    timeout = {
                        "status": "timeout",
                        "at_step": i,
                        "expected_method": arg["method"],
                        "steps_completed": i,
                    }
                    return json_response(200, timeout)
        finally:
            watch.close()
        return json_response(200, {"status": "completed", "steps": len(steps)})

    # -- the project's own: calls, messages, far ends, recordings, faxes ------------------------------------------

    async def start_call(self, call: _Call) -> Response:
        core = self.core
        body = call.object()
        _only(body, ("to_number", "from_number", "context", "session_id", *CALLER_FIELDS))
        to_number = _required(body, "to_number")
        from_number = _optional(body, "from_number") or DEFAULT_FROM
        context = _optional(body, "context") or "default"
        try:
            caller = parse_far_end({k: body[k] for k in CALLER_FIELDS if k in body}, "body", core.far_ends.default)
        except FarEndError as exc:
            raise _BadRequest(str(exc)) from None
        try:
            call_id = core.calls.start_inbound(
                context=context,
                from_number=from_number,
                to_number=to_number,
                caller=caller,
                session_id=call.session_id(body),
            )
        except LookupError:
            return json_response(404, {"error": NO_SESSION})
        status = core.calls.status(call_id)
        holder = status.get("session_id") if status else None
        return json_response(201, {"call_id": call_id, "sent_to": [holder] if holder else []})

    async def list_calls(self, call: _Call) -> Response:
        return json_response(200, {"calls": self.core.calls.calls()})

    async def get_call(self, call: _Call) -> Response:
        status = self.core.calls.status(call.groups[0])
        if status is None:
            return json_response(404, {"error": f"no such call: {call.groups[0][:100]}"})
        return json_response(200, status)

    async def start_message(self, call: _Call) -> Response:
        body = call.object()
        _only(body, ("to_number", "from_number", "body", "media", "context", "session_id"))
        media = body.get("media")
        if media is not None and (
            not isinstance(media, list) or len(media) > 100 or not all(isinstance(m, str) and m for m in media)
        ):
            raise _BadRequest("media: must be an array of URL strings")
        try:
            message_id = self.core.messages.start_inbound(
                context=_optional(body, "context") or "default",
                from_number=_required(body, "from_number"),
                to_number=_required(body, "to_number"),
                body=_required(body, "body", limit=65_536),
                media=media,
                session_id=call.session_id(body),
            )
        except LookupError:
            return json_response(404, {"error": NO_SESSION})
        return json_response(201, {"message_id": message_id})

    async def list_messages(self, call: _Call) -> Response:
        return json_response(200, {"messages": self.core.messages.messages()})

    async def get_message(self, call: _Call) -> Response:
        status = self.core.messages.status(call.groups[0])
        if status is None:
            return json_response(404, {"error": f"no such message: {call.groups[0][:100]}"})
        return json_response(200, status)

    async def get_far_ends(self, call: _Call) -> Response:
        return json_response(200, self.core.far_ends.to_json())

    async def replace_far_ends(self, call: _Call) -> Response:
        return self._far_ends(call, merge=False)

    async def merge_far_ends(self, call: _Call) -> Response:
        return self._far_ends(call, merge=True)

    def _far_ends(self, call: _Call, merge: bool) -> Response:
        core = self.core
        try:
            core.far_ends = parse_far_ends(call.json(), core.far_ends if merge else None)
        except FarEndError as exc:
            raise _BadRequest(str(exc)) from None
        return json_response(200, core.far_ends.to_json())

    async def recording(self, call: _Call) -> Response:
        seconds = self.core.calls.recording(call.groups[0])
        if seconds is None:
            return json_response(404, {"error": f"no such recording: {call.groups[0][:100]}"})
        return Response(200, wav(seconds), WAV_TYPE)

    async def fax(self, call: _Call) -> Response:
        fax_id = call.groups[0]
        pages = self.core.calls.fax(fax_id)
        if pages is None:
            return json_response(404, {"error": f"no such fax: {fax_id[:100]}"})
        return Response(200, pdf(pages, f"relay: fax {fax_id}"), PDF_TYPE)


def journal_entries(core: EmulatorCore, session_id: str | None = None) -> list[dict[str, Any]]:
    """The journal in ``mock_relay``'s shape, oldest first; a response names the method of the request it
    answers when that request is still in the journal. Secrets (credentials, ``authorization_state``) are
    redacted."""
    asked: dict[tuple[str, str, Any], str] = {}
    out = []
    for session, record in core.journal.entries():
        frame = record.value
        if frame is None:
            try:
                frame = orjson.loads(record.raw)
            except orjson.JSONDecodeError:
                frame = record.raw.decode("utf-8", "replace")
        frame_id = frame.get("id") if isinstance(frame, dict) else None
        key_id = frame_id if isinstance(frame_id, (str, int)) else None
        method = None
        if isinstance(frame, dict):
            if isinstance(frame.get("method"), str):
                method = frame["method"]
                if key_id is not None:
                    asked[(record.connection, record.direction, key_id)] = method
            elif key_id is not None and record.kind in (Kind.RESULT, Kind.ERROR):
                other = "relay>app" if record.direction == APP_TO_RELAY else APP_TO_RELAY
                method = asked.pop((record.connection, other, key_id), None)
        if session_id is not None and session != session_id:
            continue
        out.append(
            {
                "timestamp": record.time,
                "direction": "recv" if record.direction == APP_TO_RELAY else "send",
                "method": method,
                "request_id": frame_id,
                "frame": redact(frame),
                "connection_id": record.connection,
                "session_id": session or None,
            }
        )
    return out


def _parse_steps(value: Any) -> list[tuple[str, Any]]:
    """``scenario_play``'s steps, checked before any runs."""
    if not isinstance(value, list):
        raise _BadRequest("body: must be an array of steps ({sleep_ms} | {push} | {expect_recv})")
    if len(value) > MAX_STEPS:
        raise _BadRequest(f"body: at most {MAX_STEPS} steps")
    steps: list[tuple[str, Any]] = []
    for i, step in enumerate(value):
        where = f"[{i}]"
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in ("sleep_ms", "push", "expect_recv"):
            raise _BadRequest(f"{where}: must be one of {{sleep_ms}}, {{push: {{frame}}}}, {{expect_recv: {{method}}}}")
        kind, arg = next(iter(step.items()))
        if kind == "sleep_ms":
            steps.append((kind, _number(step, "sleep_ms", 0, MAX_DELAY_MS, where)))
            continue
        if not isinstance(arg, dict):
            raise _BadRequest(f"{where}.{kind}: must be an object")
        session_id = _optional(arg, "session_id", f"{where}.{kind}")
        if kind == "push":
            _only(arg, ("frame", "session_id"), f"{where}.push")
            if not isinstance(arg.get("frame"), dict):
                raise _BadRequest(f"{where}.push.frame: must be an object (a whole JSON-RPC frame)")
            steps.append((kind, {"frame": arg["frame"], "session_id": session_id}))
        else:
            _only(arg, ("method", "timeout_ms", "session_id"), f"{where}.expect_recv")
            method = _required(arg, "method", f"{where}.expect_recv")
            timeout = _number(arg, "timeout_ms", DEFAULT_TIMEOUT_MS, MAX_DELAY_MS, f"{where}.expect_recv")
            steps.append((kind, {"method": method, "timeout_ms": timeout, "session_id": session_id}))
    return steps


def _optional(body: dict[str, Any], name: str, where: str = "", limit: int = 256) -> str | None:
    """``body[name]`` if it is a non-empty string, None if left out; 400 naming the field otherwise."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        field = f"{where}.{name}" if where else name
        raise _BadRequest(f"{field}: must be a non-empty string of at most {limit} characters, not {_type(value)}")
    return value


def _required(body: dict[str, Any], name: str, where: str = "", limit: int = 256) -> str:
    value = _optional(body, name, where, limit)
    if value is None:
        raise _BadRequest(f"{f'{where}.{name}' if where else name}: required (a non-empty string)")
    return value


def _number(body: dict[str, Any], name: str, default: float, top: float, where: str = "") -> float:
    value = body.get(name, default)
    field = f"{where}.{name}" if where else name
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise _BadRequest(f"{field}: must be a number of milliseconds from 0 to {top:g}")
    return float(value)


def _only(body: dict[str, Any], fields: tuple[str, ...], where: str = "body") -> None:
    unknown = [k for k in body if k not in fields]
    if unknown:
        raise _BadRequest(f"{where}: unknown field {unknown[0][:64]!r} (fields: {', '.join(fields)})")


def _type(value: Any) -> str:
    return "an empty string" if value == "" else json_type(value)


_TABLE: tuple[tuple[str, dict[str, _Route]], ...] = (
    ("/__mock__/health", {"GET": ControlPlane.health}),
    ("/__mock__/journal", {"GET": ControlPlane.journal}),
    ("/__mock__/journal/reset", {"POST": ControlPlane.journal_reset}),
    ("/__mock__/sessions", {"GET": ControlPlane.sessions}),
    ("/__mock__/push", {"POST": ControlPlane.push}),
    ("/__mock__/inbound_call", {"POST": ControlPlane.inbound_call}),
    ("/__mock__/scenarios", {"GET": ControlPlane.scenarios_list}),
    ("/__mock__/scenarios/reset", {"POST": ControlPlane.scenarios_reset}),
    ("/__mock__/scenarios/dial", {"POST": ControlPlane.scenario_dial}),
    ("/__mock__/scenarios/([^/]+)", {"POST": ControlPlane.scenario_method}),
    ("/__mock__/scenario_play", {"POST": ControlPlane.scenario_play}),
    ("/relay/calls", {"GET": ControlPlane.list_calls, "POST": ControlPlane.start_call}),
    ("/relay/calls/([^/]+)", {"GET": ControlPlane.get_call}),
    ("/relay/messages", {"GET": ControlPlane.list_messages, "POST": ControlPlane.start_message}),
    ("/relay/messages/([^/]+)", {"GET": ControlPlane.get_message}),
    (
        "/relay/far_ends",
        {
            "GET": ControlPlane.get_far_ends,
            "PUT": ControlPlane.replace_far_ends,
            "POST": ControlPlane.merge_far_ends,
        },
    ),
    ("/relay/recordings/([^/]+)\\.wav", {"GET": ControlPlane.recording}),
    ("/relay/faxes/([^/]+)\\.pdf", {"GET": ControlPlane.fax}),
)
_ROUTES = [(re.compile(path), methods) for path, methods in _TABLE]
