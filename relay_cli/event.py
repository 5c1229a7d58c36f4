"""Typed RELAY events, with the public names of the SDK's ``signalwire.relay.event``.

Code written against the SDK ports by changing its import. Each class below is one row of a
declarative table: its fields say where each value is read from and what it defaults to, and one
generic reader builds every class from that, so the 23 event types share a single code path.

Values match the SDK's for every payload it accepts, with one deliberate difference: ``timestamp``
is read from the payload's top level (where real servers put it) before ``params.timestamp`` (where
the SDK looks), and is always a float. Unlike the SDK, parsing never raises anything but
:class:`InvalidEvent`, whatever the nested values are.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform

__all__ = [
    "EVENT_CLASS_MAP",
    "CallReceiveEvent",
    "CallStateEvent",
    "CallingErrorEvent",
    "CollectEvent",
    "ConferenceEvent",
    "ConnectEvent",
    "DenoiseEvent",
    "DetectEvent",
    "DialEvent",
    "EchoEvent",
    "FaxEvent",
    "HoldEvent",
    "InvalidEvent",
    "MessageReceiveEvent",
    "MessageStateEvent",
    "PayEvent",
    "PlayEvent",
    "QueueEvent",
    "RecordEvent",
    "ReferEvent",
    "RelayEvent",
    "SendDigitsEvent",
    "StreamEvent",
    "TapEvent",
    "TranscribeEvent",
    "check_payload",
    "parse_event",
]

T = TypeVar("T")
E = TypeVar("E", bound="RelayEvent")

_SOURCES = "relay_sources"
_MISSING: Any = object()


class InvalidEvent(ValueError):
    """The input is not an event payload: not an object, or ``event_type``/``params`` of the wrong type."""


def read(*sources: str, default: T) -> T:
    """Declare a field read from other ``params`` paths than its name, or with a dict or list default.

    A path is dotted (``"record.url"``) and the first one present wins; with no path the field's own
    name is the key. A dict or list default becomes a factory so no two events share one.
    """
    meta = {_SOURCES: tuple(tuple(s.split(".")) for s in sources)}
    if isinstance(default, (dict, list)):
        factory = type(default)
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _timestamp(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for anything else (bool and null included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (int, str)):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None
    return None


def check_payload(payload: Any) -> None:
    """Raise :class:`InvalidEvent` when ``parse_event`` would; cheaper, for streams that print raw JSON."""
    if payload.__class__ is dict:
        event_type = payload.get("event_type", "")
        params = payload.get("params", payload)
        if params.__class__ is dict and event_type.__class__ is str:
            return
    _check(payload)


def _check(payload: Any) -> tuple[str, dict[str, Any]]:
    if payload.__class__ is not dict and not isinstance(payload, dict):
        raise InvalidEvent(f"an event payload is a JSON object, not {_json_type(payload)}")
    event_type = payload.get("event_type", "")
    if not isinstance(event_type, str):
        raise InvalidEvent(f"event_type must be a string, not {_json_type(event_type)}")
    params = payload.get("params", _MISSING)
    if params is _MISSING:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidEvent(f"params must be an object, not {_json_type(params)}")
    return event_type, params


def _json_type(value: Any) -> str:
    """Name a value by its JSON type, which is what the user wrote."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Source:
    """Holds the payload an event came from, outside the dataclass fields the SDK defines."""

    __slots__ = ("_payload",)
    _payload: dict[str, Any]


@dataclass(slots=True)
class RelayEvent(_Source):
    """Any RELAY event; the class for event types without a typed class of their own."""

    event_type: str
    params: dict[str, Any]
    call_id: str = ""
    timestamp: float = 0.0

    typed_fields: ClassVar[tuple[str, ...]] = ()
    """The fields this class adds to the four every event has, in declaration order."""

    @classmethod
    def from_payload(cls: type[E], payload: dict[str, Any]) -> E:
        """Build this class from a ``signalwire.event`` payload (the frame's ``params``)."""
        event_type, params = _check(payload)
        return cls._build(payload, event_type, params)

    @classmethod
    def _build(cls: type[E], payload: dict[str, Any], event_type: str, params: dict[str, Any]) -> E:
        """Replaced per class by _compile with straight-line code; this is the base class's own."""
        event = object.__new__(cls)
        event.event_type = event_type
        event.params = params
        event.call_id = params.get("call_id", "")
        event.timestamp = _event_time(payload, params)
        event._payload = payload
        return event

    @property
    def payload(self) -> dict[str, Any]:
        """The whole payload this event was parsed from: event_channel, project_id, space_id, context."""
        payload: dict[str, Any] | None = getattr(self, "_payload", None)
        if payload is None:
            return {"event_type": self.event_type, "params": self.params, "timestamp": self.timestamp}
        return payload


def _path_test(path: tuple[str, ...]) -> str:
    """Code that is true when ``path`` exists in ``params``, leaving its value in ``_v``.

    A value that is not an object on the way means the path is absent, so a null or string
    ``record`` falls back to the flat keys instead of raising as the SDK does.
    """
    steps = [f"(_v := _get({path[0]!r}, _MISSING))"]
    steps += [f"(_v := _v.get({key!r}, _MISSING))" for key in path[1:]]
    tests = [f"isinstance({step}, dict)" for step in steps[:-1]]
    return "(" + " and ".join([*tests, f"{steps[-1]} is not _MISSING"]) + ")"


def _event_time(payload: dict[str, Any], params: dict[str, Any]) -> float:
    """Top-level ``timestamp`` first (where servers put it), then ``params.timestamp``, else 0.0."""
    for value in (payload.get("timestamp"), params.get("timestamp")):
        if value is not None and (found := _timestamp(value)) is not None:
            return found
    return 0.0


def _compile(cls: type[E]) -> type[E]:
    """Compile the class's ``read(...)`` declarations into one straight-line ``_build``.

    The table stays the only description of each class; generating the reader from it (as
    ``dataclasses`` generates ``__init__``) makes a declared class as fast as a hand-written one.
    """
    base = {f.name for f in fields(RelayEvent)}
    env: dict[str, Any] = {"_event_time": _event_time, "_MISSING": _MISSING}
    lines = []
    names = []
    for f in fields(cls):
        if f.name in base:
            continue
        names.append(f.name)
        factory = f.default_factory is not MISSING
        env[f"_d_{f.name}"] = f.default_factory if factory else f.default
        fallback = f"_d_{f.name}()" if factory else f"_d_{f.name}"
        paths = f.metadata.get(_SOURCES) or ((f.name,),)
        if len(paths) == 1 and len(paths[0]) == 1:
            key = paths[0][0]
            if factory:
                lines.append(f"event.{f.name} = _get({key!r}) if {key!r} in params else {fallback}")
            else:
                lines.append(f"event.{f.name} = _get({key!r}, {fallback})")
        else:
            found = " or ".join(_path_test(path) for path in paths)
            lines.append(f"event.{f.name} = _v if ({found}) else {fallback}")
    body = "\n    ".join(lines)
    env["_cls"] = cls
    env["_new"] = object.__new__
    source = f"""
def _build(payload, event_type, params):
    _get = params.get
    _t = payload.get("timestamp")
    event = _new(_cls)
    event.event_type = event_type
    event.params = params
    event.call_id = _get("call_id", "")
    event.timestamp = _t if _t.__class__ is float and _t - _t == 0.0 else _event_time(payload, params)
    {body}
    event._payload = payload
    return event
"""
    exec(source, env)  # noqa: S102 - source is built from this module's own declarations
    cls._build = staticmethod(env["_build"])  # type: ignore[method-assign]
    cls.typed_fields = tuple(names)
    return cls


@dataclass_transform(field_specifiers=(field, read))
def event_class(cls: type[E]) -> type[E]:
    """Make a row of the table: a dataclass whose fields are compiled into its reader."""
    return _compile(dataclass(slots=True)(cls))


@event_class
class CallStateEvent(RelayEvent):
    """calling.call.state: a call leg moved through created, ringing, answered, ending, ended."""

    call_state: str = ""
    end_reason: str = ""
    direction: str = ""
    device: dict[str, Any] = read(default={})


@event_class
class CallReceiveEvent(RelayEvent):
    """calling.call.receive: an inbound call arrived on one of the session's contexts."""

    call_state: str = ""
    direction: str = ""
    device: dict[str, Any] = read(default={})
    node_id: str = ""
    project_id: str = ""
    context: str = read("context", "protocol", default="")
    segment_id: str = ""
    tag: str = ""


@event_class
class PlayEvent(RelayEvent):
    """calling.call.play: playing, paused, finished or error."""

    control_id: str = ""
    state: str = ""


@event_class
class RecordEvent(RelayEvent):
    """calling.call.record: the result may sit in ``params.record`` or flat in ``params``."""

    control_id: str = ""
    state: str = ""
    url: str = read("record.url", "url", default="")
    duration: float = read("record.duration", "duration", default=0.0)
    size: int = read("record.size", "size", default=0)
    record: dict[str, Any] = read(default={})


@event_class
class CollectEvent(RelayEvent):
    """calling.call.collect: digits, speech, no_input, no_match or error; ``final`` only when continuous."""

    control_id: str = ""
    state: str = ""
    result: dict[str, Any] = read(default={})
    final: bool | None = None


@event_class
class ConnectEvent(RelayEvent):
    """calling.call.connect: the call bridged to (or lost) a peer leg."""

    connect_state: str = ""
    peer: dict[str, Any] = read(default={})


@event_class
class DetectEvent(RelayEvent):
    """calling.call.detect: machine, fax tone or digit detection."""

    control_id: str = ""
    detect: dict[str, Any] = read(default={})


@event_class
class FaxEvent(RelayEvent):
    """calling.call.fax: a fax sent or received."""

    control_id: str = ""
    fax: dict[str, Any] = read(default={})


@event_class
class TapEvent(RelayEvent):
    """calling.call.tap: media tapped to an RTP or WebSocket device."""

    control_id: str = ""
    state: str = ""
    tap: dict[str, Any] = read(default={})
    device: dict[str, Any] = read(default={})


@event_class
class StreamEvent(RelayEvent):
    """calling.call.stream: media streamed to a URL."""

    control_id: str = ""
    state: str = ""
    url: str = ""
    name: str = ""


@event_class
class SendDigitsEvent(RelayEvent):
    """calling.call.send_digits: DTMF sent on the call."""

    control_id: str = ""
    state: str = ""


@event_class
class DialEvent(RelayEvent):
    """calling.call.dial: an outbound dial; the winning leg is in ``call`` (absent when it failed)."""

    tag: str = ""
    dial_state: str = ""
    call: dict[str, Any] = read(default={})


@event_class
class ReferEvent(RelayEvent):
    """calling.call.refer: a SIP REFER and its NOTIFY outcome."""

    state: str = ""
    sip_refer_to: str = ""
    sip_refer_response_code: str = ""
    sip_notify_response_code: str = ""


@event_class
class DenoiseEvent(RelayEvent):
    """calling.call.denoise: noise reduction switched on or off."""

    denoised: bool = False


@event_class
class PayEvent(RelayEvent):
    """calling.call.pay: a payment collection."""

    control_id: str = ""
    state: str = ""


@event_class
class QueueEvent(RelayEvent):
    """calling.call.queue: the call entered or left a queue (``id`` and ``name`` on the wire)."""

    control_id: str = ""
    status: str = ""
    queue_id: str = read("id", default="")
    queue_name: str = read("name", default="")
    position: int = 0
    size: int = 0


@event_class
class EchoEvent(RelayEvent):
    """calling.call.echo: audio echoed back to the caller."""

    state: str = ""


@event_class
class TranscribeEvent(RelayEvent):
    """calling.call.transcribe: a transcription and the recording it came from."""

    control_id: str = ""
    state: str = ""
    url: str = ""
    recording_id: str = ""
    duration: float = 0.0
    size: int = 0


@event_class
class HoldEvent(RelayEvent):
    """calling.call.hold: the call was put on hold or taken off it."""

    state: str = ""


@event_class
class ConferenceEvent(RelayEvent):
    """calling.conference: a conference the call is in changed."""

    conference_id: str = ""
    name: str = ""
    status: str = ""


@event_class
class CallingErrorEvent(RelayEvent):
    """calling.error: the platform reports an error on a call."""

    code: str = ""
    message: str = ""


@event_class
class MessageReceiveEvent(RelayEvent):
    """messaging.receive: an inbound SMS or MMS on one of the session's contexts."""

    message_id: str = ""
    context: str = ""
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    body: str = ""
    media: list[str] = read(default=[])
    segments: int = 0
    message_state: str = ""
    tags: list[str] = read(default=[])


@event_class
class MessageStateEvent(RelayEvent):
    """messaging.state: an outbound message moved through queued, sent, delivered or failed."""

    message_id: str = ""
    context: str = ""
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    body: str = ""
    media: list[str] = read(default=[])
    segments: int = 0
    message_state: str = ""
    reason: str = ""
    tags: list[str] = read(default=[])


EVENT_CLASS_MAP: dict[str, type[RelayEvent]] = {
    "calling.call.state": CallStateEvent,
    "calling.call.receive": CallReceiveEvent,
    "calling.call.play": PlayEvent,
    "calling.call.record": RecordEvent,
    "calling.call.collect": CollectEvent,
    "calling.call.connect": ConnectEvent,
    "calling.call.detect": DetectEvent,
    "calling.call.fax": FaxEvent,
    "calling.call.tap": TapEvent,
    "calling.call.stream": StreamEvent,
    "calling.call.send_digits": SendDigitsEvent,
    "calling.call.dial": DialEvent,
    "calling.call.refer": ReferEvent,
    "calling.call.denoise": DenoiseEvent,
    "calling.call.pay": PayEvent,
    "calling.call.queue": QueueEvent,
    "calling.call.echo": EchoEvent,
    "calling.call.transcribe": TranscribeEvent,
    "calling.call.hold": HoldEvent,
    "calling.conference": ConferenceEvent,
    "calling.error": CallingErrorEvent,
    "messaging.receive": MessageReceiveEvent,
    "messaging.state": MessageStateEvent,
}


def parse_event(payload: dict[str, Any]) -> RelayEvent:
    """Parse a ``signalwire.event`` payload into its typed class, or :class:`RelayEvent` when unknown.

    Raises :class:`InvalidEvent` (a ``ValueError``) when the payload is not an object, or its
    ``event_type`` is not a string or its ``params`` not an object; nothing else.
    """
    if payload.__class__ is dict:
        event_type = payload.get("event_type", "")
        params = payload.get("params")
        if params.__class__ is dict and event_type.__class__ is str:
            return _BUILDERS.get(event_type, RelayEvent._build)(payload, event_type, params)
    event_type, params = _check(payload)
    return EVENT_CLASS_MAP.get(event_type, RelayEvent)._build(payload, event_type, params)


_BUILDERS = {event_type: cls._build for event_type, cls in EVENT_CLASS_MAP.items()}
