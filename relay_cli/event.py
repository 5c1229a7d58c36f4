"""Typed RELAY events, with the public names of the SDK's ``signalwire.relay.event``.

Code written against the SDK ports by changing its import. Each class below is one row of a
declarative table: its fields say where each value is read from and what it defaults to, and one
generic reader builds every class from that, so the 23 event types share a single code path.

Values match the SDK's for every payload it accepts, with one deliberate difference: ``timestamp``
is :func:`event_time` (top level first, where real servers put it, then ``params.timestamp``, where
the SDK looks), always a float, ``0.0`` when the event has no time. Unlike the SDK, parsing never
raises anything but :class:`InvalidEvent`, whatever the nested values are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    "event_time",
    "parse_event",
]

T = TypeVar("T")
E = TypeVar("E", bound="RelayEvent")

_SOURCES = "relay_sources"
_MISSING: Any = object()
_INF = math.inf


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


def event_time(payload: dict[str, Any]) -> float | None:
    """When the event happened, in epoch seconds: the one reading of it every command shares.

    The top-level ``timestamp`` (where servers put it) is tried first, then ``params.timestamp`` (where
    the SDK reads it); the first that is a finite number above zero, or a string of one, wins.
    Booleans, null and anything else are no time. Zero and negative values are no time either: the
    SDK writes ``0.0`` when it found none, and a made-up 1970 would wreck every gap, relative time
    and span computed from it. :func:`parse_event` writes ``0.0`` for None, the SDK's default.

    Hot path for the payloads whose top-level ``timestamp`` is not a float (the callers test that
    case inline): a float in ``params`` is still taken without a call.
    """
    value = payload.get("timestamp")
    if value is not None:
        if value.__class__ is float and 0.0 < value < _INF:
            return value
        found = _seconds(value)
        if found is not None:
            return found
    params = payload.get("params")
    if params.__class__ is dict or isinstance(params, dict):
        value = params.get("timestamp")
        if value.__class__ is float and 0.0 < value < _INF:
            return value
        if value is not None:
            return _seconds(value)
    return None


def _seconds(value: Any) -> float | None:
    """A finite number above zero from a number or a numeric string; None for anything else."""
    kind = value.__class__
    if kind is str or kind is float or kind is int or (isinstance(value, (int, float, str)) and kind is not bool):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return None
        return number if 0.0 < number < _INF else None
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
        raise InvalidEvent(f"an event payload is a JSON object, not {json_type(payload)}")
    event_type = payload.get("event_type", "")
    if not isinstance(event_type, str):
        raise InvalidEvent(f"event_type must be a string, not {json_type(event_type)}")
    params = payload.get("params", _MISSING)
    if params is _MISSING:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidEvent(f"params must be an object, not {json_type(params)}")
    return event_type, params


def json_type(value: Any) -> str:
    """Name a value by its JSON type, which is what the user wrote (for error messages everywhere)."""
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
        event.timestamp = event_time(payload) or 0.0
        event._payload = payload
        return event

    @property
    def payload(self) -> dict[str, Any]:
        """The whole payload this event was parsed from: event_channel, project_id, space_id, context."""
        payload: dict[str, Any] | None = getattr(self, "_payload", None)
        if payload is None:
            return {"event_type": self.event_type, "params": self.params, "timestamp": self.timestamp}
        return payload


_EMPTY: dict[str, Any] = {}
"""What a nested path reads through when an object on the way is absent or not an object; never written."""

_LITERALS = (str, int, bool, type(None))
_FACTORY_LITERALS: dict[Any, str] = {dict: "{}", list: "[]"}


def _builder(cls: type[E]) -> Callable[[dict[str, Any], str, dict[str, Any]], E]:
    """Compile the class's ``read(...)`` declarations into one straight-line builder function.

    The table stays the only description of each class; generating the reader from it (as
    ``dataclasses`` generates ``__init__``) makes a declared class as fast as a hand-written one.

    Hot path (every event of every command), so the generated code keeps measured tricks:
    ``params.get`` rather than a bound ``get`` (CPython 3.11 specialises the method call), defaults
    as literals, each object on a nested path (``record``) read once into a local, a present key
    read with ``in`` and ``[]``, and the ``timestamp`` tested inline when it is a float or absent
    (top-level, else in ``params``; ``1e999`` is the literal for infinity). A value that
    is not an object on a nested path means the path is absent, so a null or string ``record``
    falls back to the flat keys instead of raising as the SDK does.
    """
    base = {f.name for f in fields(RelayEvent)}
    env: dict[str, Any] = {"_event_time": event_time, "_EMPTY": _EMPTY, "_new": object.__new__, "_cls": cls}
    prelude: list[str] = []
    holders: dict[tuple[str, ...], str] = {}

    def holder(path: tuple[str, ...]) -> str:
        """The local holding the object at ``path`` (``_EMPTY`` when it is not one), read once."""
        if not path:
            return "params"
        name = holders.get(path)
        if name is None:
            outer = holder(path[:-1])
            name = holders[path] = f"_n{len(holders)}"
            prelude.append(f"{name} = {outer}.get({path[-1]!r}, _EMPTY)")
            prelude.append(f"if {name}.__class__ is not dict and not isinstance({name}, dict): {name} = _EMPTY")
        return name

    lines = []
    for f in fields(cls):
        if f.name in base:
            continue
        fresh = f.default_factory is not MISSING
        if fresh:
            env[f"_d_{f.name}"] = f.default_factory
            fallback = _FACTORY_LITERALS.get(f.default_factory, f"_d_{f.name}()")
        elif type(f.default) in _LITERALS or (type(f.default) is float and math.isfinite(f.default)):
            fallback = repr(f.default)
        else:
            env[f"_d_{f.name}"] = f.default
            fallback = f"_d_{f.name}"
        paths: tuple[tuple[str, ...], ...] = f.metadata.get(_SOURCES) or ((f.name,),)
        *firsts, (*last_path, last_key) = paths
        where = holder(tuple(last_path))
        if fresh:  # a new default object only when the key is absent
            value = f"{where}[{last_key!r}] if {last_key!r} in {where} else {fallback}"
        else:
            value = f"{where}.get({last_key!r}, {fallback})"
        for *path, key in reversed(firsts):
            where = holder(tuple(path))
            value = f"{where}[{key!r}] if {key!r} in {where} else ({value})"
        lines.append(f"event.{f.name} = {value}")
    body = "\n    ".join([*prelude, *lines])
    source = f"""
def _build(payload, event_type, params):
    _t = payload.get("timestamp")
    if _t is None:
        _t = params.get("timestamp")
    if _t.__class__ is not float or not 0.0 < _t < 1e999:
        _t = 0.0 if _t is None else (_event_time(payload) or 0.0)
    event = _new(_cls)
    event.event_type = event_type
    event.params = params
    event.call_id = params.get("call_id", "")
    event.timestamp = _t
    {body}
    event._payload = payload
    return event
"""
    exec(source, env)  # noqa: S102 - source is built from this module's own declarations
    build: Callable[[dict[str, Any], str, dict[str, Any]], E] = env["_build"]
    build.__qualname__ = f"{cls.__name__}._build"
    return build


def _compile(cls: type[E]) -> type[E]:
    """Give a row of the table its compiled builder and its ``typed_fields``."""
    cls._build = staticmethod(_builder(cls))  # type: ignore[method-assign,assignment]
    base = {f.name for f in fields(RelayEvent)}
    cls.typed_fields = tuple(f.name for f in fields(cls) if f.name not in base)
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
    if payload.__class__ is dict:  # hot path: a plain dict with both keys; ``[]`` beats ``.get``
        try:
            event_type = payload["event_type"]
            params = payload["params"]
        except KeyError:
            pass
        else:
            if params.__class__ is dict and event_type.__class__ is str:
                return _BUILDERS.get(event_type, _build_other)(payload, event_type, params)
    event_type, params = _check(payload)
    return _BUILDERS.get(event_type, _build_other)(payload, event_type, params)


_BUILDERS = {event_type: cls._build for event_type, cls in EVENT_CLASS_MAP.items()}
_build_other = _builder(RelayEvent)
