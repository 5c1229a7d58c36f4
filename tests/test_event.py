"""``relay_cli.event`` against the official SDK's ``signalwire.relay.event``.

The SDK is not installed in CI, so its public names and dataclass fields are written out here from its
source (``signalwire/relay/event.py``), and its values come from ``tests/data/sdk_parity.jsonl``, which
``benchmarks/sdk_parity.py`` records by running the SDK.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import defaultdict
from typing import Any

import pytest
from conftest import DATA, real_payloads, strict_equal
from hypothesis import given, settings
from hypothesis import strategies as st

import relay_cli.event as event_module
from relay_cli.event import EVENT_CLASS_MAP, InvalidEvent, RelayEvent, event_time, parse_event
from relay_cli.pipeline.replay import Pacer
from relay_cli.views.printers import Format, make_printer
from relay_cli.views.summary import Summary
from relay_cli.views.text import Style
from relay_cli.views.timeline import CallTracker

# -- the SDK, written out ------------------------------------------------------------------------------

# Every public name of signalwire.relay.event, minus what it imports (Any, annotations, dataclass, field).
SDK_PUBLIC_NAMES = frozenset(
    {
        "RelayEvent",
        "CallStateEvent",
        "CallReceiveEvent",
        "PlayEvent",
        "RecordEvent",
        "CollectEvent",
        "ConnectEvent",
        "DetectEvent",
        "FaxEvent",
        "TapEvent",
        "StreamEvent",
        "SendDigitsEvent",
        "DialEvent",
        "ReferEvent",
        "DenoiseEvent",
        "PayEvent",
        "QueueEvent",
        "EchoEvent",
        "TranscribeEvent",
        "HoldEvent",
        "ConferenceEvent",
        "CallingErrorEvent",
        "MessageReceiveEvent",
        "MessageStateEvent",
        "EVENT_CLASS_MAP",
        "parse_event",
    }
)

SDK_EVENT_TYPES: dict[str, str] = {
    "calling.call.state": "CallStateEvent",
    "calling.call.receive": "CallReceiveEvent",
    "calling.call.play": "PlayEvent",
    "calling.call.record": "RecordEvent",
    "calling.call.collect": "CollectEvent",
    "calling.call.connect": "ConnectEvent",
    "calling.call.detect": "DetectEvent",
    "calling.call.fax": "FaxEvent",
    "calling.call.tap": "TapEvent",
    "calling.call.stream": "StreamEvent",
    "calling.call.send_digits": "SendDigitsEvent",
    "calling.call.dial": "DialEvent",
    "calling.call.refer": "ReferEvent",
    "calling.call.denoise": "DenoiseEvent",
    "calling.call.pay": "PayEvent",
    "calling.call.queue": "QueueEvent",
    "calling.call.echo": "EchoEvent",
    "calling.call.transcribe": "TranscribeEvent",
    "calling.call.hold": "HoldEvent",
    "calling.conference": "ConferenceEvent",
    "calling.error": "CallingErrorEvent",
    "messaging.receive": "MessageReceiveEvent",
    "messaging.state": "MessageStateEvent",
}

# The fields every SDK class starts with; the first two have no default.
BASE_FIELDS: tuple[str, ...] = ("event_type", "params", "call_id", "timestamp")
REQUIRED = object()
BASE_DEFAULTS: dict[str, Any] = {"event_type": REQUIRED, "params": REQUIRED, "call_id": "", "timestamp": 0.0}

# Each SDK class's own fields, in declaration order, with their defaults.
SDK_FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    "RelayEvent": (),
    "CallStateEvent": (("call_state", ""), ("end_reason", ""), ("direction", ""), ("device", {})),
    "CallReceiveEvent": (
        ("call_state", ""),
        ("direction", ""),
        ("device", {}),
        ("node_id", ""),
        ("project_id", ""),
        ("context", ""),
        ("segment_id", ""),
        ("tag", ""),
    ),
    "PlayEvent": (("control_id", ""), ("state", "")),
    "RecordEvent": (
        ("control_id", ""),
        ("state", ""),
        ("url", ""),
        ("duration", 0.0),
        ("size", 0),
        ("record", {}),
    ),
    "CollectEvent": (("control_id", ""), ("state", ""), ("result", {}), ("final", None)),
    "ConnectEvent": (("connect_state", ""), ("peer", {})),
    "DetectEvent": (("control_id", ""), ("detect", {})),
    "FaxEvent": (("control_id", ""), ("fax", {})),
    "TapEvent": (("control_id", ""), ("state", ""), ("tap", {}), ("device", {})),
    "StreamEvent": (("control_id", ""), ("state", ""), ("url", ""), ("name", "")),
    "SendDigitsEvent": (("control_id", ""), ("state", "")),
    "DialEvent": (("tag", ""), ("dial_state", ""), ("call", {})),
    "ReferEvent": (
        ("state", ""),
        ("sip_refer_to", ""),
        ("sip_refer_response_code", ""),
        ("sip_notify_response_code", ""),
    ),
    "DenoiseEvent": (("denoised", False),),
    "PayEvent": (("control_id", ""), ("state", "")),
    "QueueEvent": (
        ("control_id", ""),
        ("status", ""),
        ("queue_id", ""),
        ("queue_name", ""),
        ("position", 0),
        ("size", 0),
    ),
    "EchoEvent": (("state", ""),),
    "TranscribeEvent": (
        ("control_id", ""),
        ("state", ""),
        ("url", ""),
        ("recording_id", ""),
        ("duration", 0.0),
        ("size", 0),
    ),
    "HoldEvent": (("state", ""),),
    "ConferenceEvent": (("conference_id", ""), ("name", ""), ("status", "")),
    "CallingErrorEvent": (("code", ""), ("message", "")),
    "MessageReceiveEvent": (
        ("message_id", ""),
        ("context", ""),
        ("direction", ""),
        ("from_number", ""),
        ("to_number", ""),
        ("body", ""),
        ("media", []),
        ("segments", 0),
        ("message_state", ""),
        ("tags", []),
    ),
    "MessageStateEvent": (
        ("message_id", ""),
        ("context", ""),
        ("direction", ""),
        ("from_number", ""),
        ("to_number", ""),
        ("body", ""),
        ("media", []),
        ("segments", 0),
        ("message_state", ""),
        ("reason", ""),
        ("tags", []),
    ),
}

CLASS_NAMES = tuple(SDK_FIELDS)
UNKNOWN_TYPE = "calling.call.not_yet_invented"


def event_class(name: str) -> type[RelayEvent]:
    cls = getattr(event_module, name)
    assert isinstance(cls, type) and issubclass(cls, RelayEvent)
    return cls


def sdk_value(class_name: str, name: str, default: Any, params: dict[str, Any]) -> Any:
    """What the SDK's ``from_payload`` reads for a typed field, made total: a ``record`` that is not an
    object (where the SDK raises AttributeError) counts as absent, so the flat keys are read instead."""
    if class_name == "RecordEvent" and name in ("url", "duration", "size"):
        record = params.get("record", {})
        if isinstance(record, dict) and name in record:
            return record[name]
        return params.get(name, default)
    if class_name == "CallReceiveEvent" and name == "context":
        return params["context"] if "context" in params else params.get("protocol", "")
    if class_name == "QueueEvent" and name in ("queue_id", "queue_name"):
        return params.get({"queue_id": "id", "queue_name": "name"}[name], default)
    return params.get(name, default)


def parity_records() -> list[dict[str, Any]]:
    lines = (DATA / "sdk_parity.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


PARITY = parity_records()
PARITY_BY_CLASS: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
for _line_no, _record in enumerate(PARITY, 1):
    PARITY_BY_CLASS[_record["class"]].append((_line_no, _record))


# -- public names and the class table ------------------------------------------------------------------


def test_every_sdk_public_name_is_exported_and_invalid_event_too() -> None:
    assert set(event_module.__all__) >= SDK_PUBLIC_NAMES
    assert "InvalidEvent" in event_module.__all__
    for name in event_module.__all__:
        assert hasattr(event_module, name), name
    assert callable(event_module.parse_event)


def test_invalid_event_is_a_value_error() -> None:
    assert issubclass(InvalidEvent, ValueError)


def test_event_class_map_has_exactly_the_23_sdk_types() -> None:
    assert len(EVENT_CLASS_MAP) == 23
    assert {event_type: cls.__name__ for event_type, cls in EVENT_CLASS_MAP.items()} == SDK_EVENT_TYPES
    for cls in EVENT_CLASS_MAP.values():
        assert getattr(event_module, cls.__name__) is cls


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_each_class_is_a_dataclass_with_the_sdk_fields_and_defaults(name: str) -> None:
    cls = event_class(name)
    assert dataclasses.is_dataclass(cls)
    fields = dataclasses.fields(cls)
    expected = BASE_DEFAULTS | dict(SDK_FIELDS[name])
    assert [f.name for f in fields] == [*BASE_FIELDS, *(n for n, _ in SDK_FIELDS[name])]
    for f in fields:
        want = expected[f.name]
        if want is REQUIRED:
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f.name
            continue
        got = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert strict_equal(got, want), (f.name, got, want)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_each_class_constructs_like_the_sdks(name: str) -> None:
    cls = event_class(name)
    event = cls(event_type="x", params={"a": 1})
    assert event.event_type == "x" and event.params == {"a": 1}
    assert strict_equal(event.call_id, "") and strict_equal(event.timestamp, 0.0)
    for field_name, default in SDK_FIELDS[name]:
        assert strict_equal(getattr(event, field_name), default), field_name
    values = {field_name: f"set-{field_name}" for field_name, _ in SDK_FIELDS[name]}
    event = cls(event_type="x", params={}, call_id="c", timestamp=1.5, **values)
    for field_name, value in values.items():
        assert getattr(event, field_name) == value
    assert event == cls(event_type="x", params={}, call_id="c", timestamp=1.5, **values)


def distinct_params(name: str) -> dict[str, Any]:
    """Params where every typed field of ``name`` has its own value, at the key the SDK reads it from."""
    renamed = {"queue_id": "id", "queue_name": "name"} if name == "QueueEvent" else {}
    params: dict[str, Any] = {"call_id": "call-1"}
    for field_name, _ in SDK_FIELDS[name]:
        key = renamed.get(field_name, field_name)
        params[key] = {"audio": {"format": "mp3"}} if field_name == "record" else f"{name}-{field_name}"
    return params


@pytest.mark.parametrize("name", CLASS_NAMES)
@pytest.mark.parametrize("event_type", ["calling.call.state", UNKNOWN_TYPE, ""])
def test_from_payload_builds_that_class_whatever_the_event_type(name: str, event_type: str) -> None:
    cls = event_class(name)
    params = distinct_params(name)
    payload = {"event_type": event_type, "params": params, "timestamp": 12.5, "event_channel": "ch"}
    event = cls.from_payload(payload)
    assert type(event) is cls
    assert event.event_type == event_type
    assert event.params == params
    assert event.call_id == "call-1"
    assert strict_equal(event.timestamp, 12.5)
    for field_name, default in SDK_FIELDS[name]:
        assert strict_equal(getattr(event, field_name), sdk_value(name, field_name, default, params)), field_name
    assert event.payload is payload


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_from_payload_rejects_what_parse_event_rejects(name: str) -> None:
    cls = event_class(name)
    with pytest.raises(InvalidEvent, match="params must be an object, not null"):
        cls.from_payload({"event_type": "calling.call.state", "params": None})
    with pytest.raises(InvalidEvent, match="event_type must be a string, not a number"):
        cls.from_payload({"event_type": 1, "params": {}})


# -- values: the SDK's, recorded -------------------------------------------------------------------------


def test_strict_equal_tells_numbers_strings_and_bools_apart() -> None:
    assert strict_equal({"a": [1, "x", None]}, {"a": [1, "x", None]})
    assert not strict_equal(1, 1.0)
    assert not strict_equal(1, "1")
    assert not strict_equal(True, 1)
    assert not strict_equal(0, False)
    assert not strict_equal({"a": [1]}, {"a": [1.0]})
    assert not strict_equal({"a": 1}, {"a": 1, "b": 2})


def test_parity_file_covers_every_class_and_the_loose_shapes() -> None:
    assert len(PARITY) >= 1500
    assert set(PARITY_BY_CLASS) == set(CLASS_NAMES)
    for record in PARITY:
        assert set(record) == {"payload", "class", "fields"}
        assert "timestamp" not in record["fields"]
    records = [r for _, r in PARITY_BY_CLASS["RecordEvent"]]
    params = [r["payload"].get("params", {}) for r in records]
    assert any("record" not in p and "url" in p for p in params)
    assert any(isinstance(p.get("record"), dict) for p in params)
    assert any(isinstance(r["fields"]["duration"], str) for r in records)
    assert any("params" not in r["payload"] for r in PARITY)
    assert any("event_type" not in r["payload"] for r in PARITY)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_same_class_values_and_types_as_the_sdk(name: str) -> None:
    mismatches: list[str] = []
    for line_no, record in PARITY_BY_CLASS[name]:
        event = parse_event(record["payload"])
        if type(event).__name__ != record["class"]:
            mismatches.append(f"line {line_no}: {type(event).__name__} instead of {record['class']}")
            continue
        for field_name, want in record["fields"].items():
            got = getattr(event, field_name)
            if not strict_equal(got, want):
                mismatches.append(f"line {line_no}: {field_name} = {got!r}, SDK {want!r}")
        if type(event.timestamp) is not float:
            mismatches.append(f"line {line_no}: timestamp {event.timestamp!r} is not a float")
    assert not mismatches, "\n".join(mismatches[:20])


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_from_payload_gives_the_same_values_as_parse_event(name: str) -> None:
    cls = event_class(name)
    for _, record in PARITY_BY_CLASS[name][:40]:
        assert cls.from_payload(record["payload"]) == parse_event(record["payload"])


# -- timestamp --------------------------------------------------------------------------------------------

ABSENT = object()
TIMESTAMP_CASES: list[tuple[Any, Any, float]] = [
    (1764201234.5, ABSENT, 1764201234.5),
    (ABSENT, 1764201234.5, 1764201234.5),
    (1.5, 2.5, 1.5),
    (1764201234, ABSENT, 1764201234.0),
    (ABSENT, 17, 17.0),
    ("1764201234.5", ABSENT, 1764201234.5),
    (ABSENT, "1764201234.5", 1764201234.5),
    ("1764201234", 2.5, 1764201234.0),
    ("-3.25", ABSENT, 0.0),
    (-3.25, 2.5, 2.5),
    (0, 5.5, 5.5),
    (0.0, 5.5, 5.5),
    ("0", ABSENT, 0.0),
    (True, 2.5, 2.5),
    (False, ABSENT, 0.0),
    (ABSENT, True, 0.0),
    (None, 2.5, 2.5),
    (None, None, 0.0),
    (math.nan, 2.5, 2.5),
    (math.inf, 2.5, 2.5),
    (-math.inf, ABSENT, 0.0),
    ("nan", 2.5, 2.5),
    ("inf", ABSENT, 0.0),
    ("-Infinity", 3.0, 3.0),
    ("1e999", 3.0, 3.0),
    (10**400, 4.0, 4.0),
    ("abc", 2, 2.0),
    ("", "7", 7.0),
    ([1], 2.5, 2.5),
    ({"seconds": 1}, 2.5, 2.5),
    ("abc", "abc", 0.0),
    (ABSENT, ABSENT, 0.0),
]


def with_timestamps(event_type: str, top: Any, inner: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"call_id": "c1"}
    if inner is not ABSENT:
        params["timestamp"] = inner
    payload: dict[str, Any] = {"event_type": event_type, "params": params}
    if top is not ABSENT:
        payload["timestamp"] = top
    return payload


@pytest.mark.parametrize(("top", "inner", "expected"), TIMESTAMP_CASES)
def test_timestamp_is_the_first_positive_finite_time_top_level_first_else_zero(
    top: Any, inner: Any, expected: float
) -> None:
    for event_type in [*SDK_EVENT_TYPES, UNKNOWN_TYPE, ""]:
        payload = with_timestamps(event_type, top, inner)
        for event in (parse_event(payload), EVENT_CLASS_MAP.get(event_type, RelayEvent).from_payload(payload)):
            assert type(event.timestamp) is float, (event_type, event.timestamp)
            assert event.timestamp == expected, (event_type, event.timestamp)


def test_timestamp_when_params_is_absent() -> None:
    assert parse_event({"event_type": "calling.call.state", "timestamp": "12.5"}).timestamp == 12.5
    assert parse_event({"event_type": "calling.call.state"}).timestamp == 0.0


# -- event_time: the one reading of "when" that parse, the pacer and every view share --------------------


@pytest.mark.parametrize(("top", "inner", "expected"), TIMESTAMP_CASES)
def test_event_time_is_parse_events_timestamp_with_none_for_no_time(top: Any, inner: Any, expected: float) -> None:
    found = event_time(with_timestamps("calling.call.state", top, inner))
    assert found is None if expected == 0.0 else (type(found) is float and found == expected)


def test_event_time_when_params_is_not_an_object() -> None:
    assert event_time({"timestamp": "x", "params": [1]}) is None
    assert event_time({"params": None}) is None
    assert event_time({}) is None


T0 = 1_764_201_600.25
CALL = "5b1f0c2e-0d7e-4c55-9a4e-2f6b1e0c9d11"


def one_call() -> list[dict[str, Any]]:
    """An inbound call answered, played to and hung up, with float timestamps at the top level."""
    device = {"type": "phone", "params": {"from_number": "+15551230001", "to_number": "+15551230002"}}
    steps: list[tuple[float, str, dict[str, Any]]] = [
        (0.0, "calling.call.receive", {"call_state": "created", "context": "office", "device": device}),
        (0.5, "calling.call.state", {"call_state": "ringing", "direction": "inbound", "device": device}),
        (1.25, "calling.call.state", {"call_state": "answered", "direction": "inbound", "device": device}),
        (2.0, "calling.call.play", {"control_id": "p1", "state": "playing"}),
        (7.5, "calling.call.play", {"control_id": "p1", "state": "finished"}),
        (9.75, "calling.call.state", {"call_state": "ended", "end_reason": "hangup", "direction": "inbound"}),
    ]
    return [
        {"event_type": event_type, "timestamp": T0 + at, "params": {"call_id": CALL, **params}}
        for at, event_type, params in steps
    ]


def loosely_timed(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events with their times as real servers and SDK dumps also write them.

    In turn: a numeric string at the top level, a numeric string in ``params``, a float in ``params``
    only, and the SDK's ``0.0`` "no time" at the top level with the float in ``params``.
    """
    loose = []
    for n, payload in enumerate(payloads):
        ts = payload["timestamp"]
        top = {k: v for k, v in payload.items() if k != "timestamp"}
        params = dict(payload["params"])
        top["params"] = params
        if n % 4 == 0:
            top["timestamp"] = repr(ts)
        elif n % 4 == 1:
            params["timestamp"] = repr(ts)
        elif n % 4 == 2:
            params["timestamp"] = ts
        else:
            top["timestamp"] = 0.0
            params["timestamp"] = ts
        loose.append(top)
    return loose


def test_every_reader_takes_a_numeric_string_or_params_timestamp_as_the_float_one() -> None:
    exact, loose = one_call(), loosely_timed(one_call())
    assert [event_time(p) for p in loose] == [p["timestamp"] for p in exact]
    assert [parse_event(p).timestamp for p in loose] == [p["timestamp"] for p in exact]


def test_a_numeric_string_timestamp_prints_its_time_in_pretty_output() -> None:
    def pretty(payloads: list[dict[str, Any]]) -> list[bytes]:
        printer = make_printer(Format.pretty, Style(False))
        assert printer is not None
        return [printer(p, None, None) for p in payloads]

    exact, loose = pretty(one_call()), pretty(loosely_timed(one_call()))
    assert loose == exact
    clock = time.strftime("%H:%M:%S", time.localtime(T0)) + ".250 "
    assert loose[0].startswith(clock.encode())
    assert all(not line.startswith(b"--:--:--") for line in loose)


def test_a_numeric_string_timestamp_orders_the_timeline() -> None:
    def timeline(payloads: list[dict[str, Any]]) -> str:
        tracker = CallTracker(style=Style(False))
        return "".join([tracker.feed(p) for p in payloads] + [tracker.finish()])

    exact, loose = timeline(one_call()), timeline(loosely_timed(one_call()))
    assert loose == exact
    clocks = [line.split()[0] for line in loose.splitlines()[1:] if line]
    assert clocks == ["+0.000s", "+0.500s", "+1.250s", "+2.000s", "+7.500s", "+9.750s"]


def test_a_numeric_string_timestamp_counts_in_the_summarys_time_span() -> None:
    def summary(payloads: list[dict[str, Any]]) -> list[str]:
        counted = Summary()
        for payload in payloads:
            counted.feed(payload)
        return counted.lines()

    exact, loose = summary(one_call()), summary(loosely_timed(one_call()))
    assert loose == exact
    assert loose[loose.index("time span") + 1].endswith("(9.750s)")


def test_a_numeric_string_timestamp_paces_a_replay_and_no_time_does_not() -> None:
    slept: list[float] = []
    pacer = Pacer(speed=2.0, max_gap=1000.0, sleep=slept.append)
    pacer.wait({"event_type": "calling.call.play", "timestamp": "1764201600.0"})
    for no_time in ({"timestamp": 0}, {"timestamp": -5.0}, {"timestamp": "soon"}, {"timestamp": True}, {}):
        pacer.wait({"event_type": "calling.call.play", **no_time})
    pacer.wait({"event_type": "calling.call.play", "params": {"timestamp": "1764201700.0"}})
    assert len(slept) == 1
    assert 40.0 < slept[0] <= 50.0  # the 100 s gap at speed 2, less the moments this test took


# -- loose real-world shapes (PROTOCOL.md section 8) ------------------------------------------------------


def parse(event_type: str, params: dict[str, Any], **top: Any) -> Any:
    """parse_event, typed Any so the tests can read each class's own fields."""
    return parse_event({"event_type": event_type, "params": params, **top})


def test_numbers_as_strings_are_kept_as_they_arrived() -> None:
    fax = parse("calling.call.fax", {"fax": {"type": "finished", "params": {"pages": "1"}}})
    assert fax.fax["params"]["pages"] == "1"
    tap = parse("calling.call.tap", {"device": {"type": "rtp", "params": {"port": "5000"}}})
    assert tap.device["params"]["port"] == "5000"
    queue = parse("calling.call.queue", {"position": "2", "size": "5"})
    assert strict_equal((queue.position, queue.size), ("2", "5"))
    record = parse("calling.call.record", {"duration": "4.5", "size": "4096"})
    assert strict_equal((record.duration, record.size), ("4.5", "4096"))
    transcribe = parse("calling.call.transcribe", {"duration": 30, "size": 1.0})
    assert strict_equal((transcribe.duration, transcribe.size), (30, 1.0))
    message = parse("messaging.state", {"segments": "2"})
    assert strict_equal(message.segments, "2")
    error = parse("calling.error", {"code": 500})
    assert strict_equal(error.code, 500)
    dial = parse("calling.call.dial", {"dial_state": "answered", "call": {"call_id": "c", "dial_winner": "true"}})
    assert dial.call["dial_winner"] == "true"


def test_record_fields_read_nested_first_then_flat() -> None:
    flat = parse("calling.call.record", {"url": "flat.mp3", "duration": 4, "size": 4096})
    assert strict_equal((flat.url, flat.duration, flat.size, flat.record), ("flat.mp3", 4, 4096, {}))
    nested_record = {"url": "n.mp3", "duration": 2.5, "size": 10}
    nested = parse("calling.call.record", {"record": nested_record, "url": "flat.mp3", "duration": 4, "size": 4096})
    assert strict_equal((nested.url, nested.duration, nested.size), ("n.mp3", 2.5, 10))
    assert nested.record == nested_record
    partial = parse("calling.call.record", {"record": {"url": "n.mp3"}, "duration": 4, "size": 4096})
    assert strict_equal((partial.url, partial.duration, partial.size), ("n.mp3", 4, 4096))
    audio_only = parse("calling.call.record", {"record": {"audio": {"format": "mp3"}}, "url": "record.mp3"})
    assert strict_equal((audio_only.url, audio_only.duration, audio_only.size), ("record.mp3", 0.0, 0))
    nulls = parse("calling.call.record", {"record": {"url": None}, "url": "flat.mp3"})
    assert nulls.url is None


@pytest.mark.parametrize("record", [None, "r.mp3", ["r.mp3"], 7, True])
def test_record_that_is_not_an_object_falls_back_to_flat_keys(record: Any) -> None:
    # The SDK raises AttributeError here; relay shows what arrived.
    event = parse("calling.call.record", {"record": record, "url": "flat.mp3", "duration": 4, "size": 4096})
    assert type(event).__name__ == "RecordEvent"
    assert strict_equal((event.url, event.duration, event.size), ("flat.mp3", 4, 4096))
    assert strict_equal(event.record, record)


def test_dial_failed_has_no_call_and_no_call_id() -> None:
    event = parse("calling.call.dial", {"dial_state": "failed", "tag": "t-1", "node_id": "n"})
    assert type(event).__name__ == "DialEvent"
    assert strict_equal((event.dial_state, event.tag, event.call, event.call_id), ("failed", "t-1", {}, ""))
    answered = parse("calling.call.dial", {"dial_state": "answered", "tag": "t-1", "call": {"call_id": "leg"}})
    assert answered.call["call_id"] == "leg"
    assert answered.call_id == ""


def test_collect_final_is_none_when_absent_and_kept_when_present() -> None:
    assert parse("calling.call.collect", {"result": {"type": "digit"}}).final is None
    assert parse("calling.call.collect", {"final": False}).final is False
    assert parse("calling.call.collect", {"final": True}).final is True
    assert parse("calling.call.collect", {"final": "true"}).final == "true"


def test_queue_id_and_name_come_from_id_and_name() -> None:
    event = parse("calling.call.queue", {"id": "q-1", "name": "support", "queue_id": "no", "queue_name": "no"})
    assert (event.queue_id, event.queue_name) == ("q-1", "support")
    empty = parse("calling.call.queue", {"queue_id": "no", "queue_name": "no"})
    assert (empty.queue_id, empty.queue_name) == ("", "")


def test_receive_context_falls_back_to_protocol() -> None:
    assert parse("calling.call.receive", {"protocol": "signalwire_p"}).context == "signalwire_p"
    assert parse("calling.call.receive", {"context": "office", "protocol": "signalwire_p"}).context == "office"
    assert parse("calling.call.receive", {"context": None, "protocol": "signalwire_p"}).context is None
    assert parse("calling.call.receive", {}).context == ""
    assert parse("calling.call.receive", {}, context="top-level").context == ""


def test_denoised_defaults_to_false() -> None:
    assert parse("calling.call.denoise", {}).denoised is False
    assert parse("calling.call.denoise", {"denoised": True}).denoised is True
    assert parse("calling.call.denoise", {"denoised": "true"}).denoised == "true"


def test_keys_present_with_null_are_kept_as_null() -> None:
    event = parse("calling.call.state", {"call_id": None, "call_state": None, "device": None})
    assert (event.call_id, event.call_state, event.device, event.end_reason) == (None, None, None, "")


def test_call_id_comes_from_params_only() -> None:
    assert parse("calling.call.state", {"peer": {"call_id": "parent"}, "call_id": "leg"}).call_id == "leg"
    assert parse("calling.call.connect", {"peer": {"call_id": "other"}}).call_id == ""
    assert parse_event({"event_type": "calling.call.state", "call_id": "top", "params": {}}).call_id == ""
    assert parse("messaging.receive", {"message_id": "m-1"}).call_id == ""


def test_params_and_event_type_may_be_absent() -> None:
    no_params = parse_event({"event_type": "calling.call.play"})
    assert type(no_params).__name__ == "PlayEvent"
    assert (no_params.params, no_params.call_id) == ({}, "")
    no_type = parse_event({"params": {"call_id": "c", "call_state": "ended"}})
    assert type(no_type) is RelayEvent
    assert (no_type.event_type, no_type.call_id) == ("", "c")
    assert type(parse_event({})) is RelayEvent


@pytest.mark.parametrize(
    "event_type", ["signalwire.authorization.state", "calling.call.future", "", "CALLING.CALL.STATE", " calling.error"]
)
def test_unknown_event_types_parse_as_the_base_class(event_type: str) -> None:
    event = parse(event_type, {"call_id": "c", "state": "x"})
    assert type(event) is RelayEvent
    assert (event.event_type, event.call_id, event.params) == (event_type, "c", {"call_id": "c", "state": "x"})


# -- the real corpus ---------------------------------------------------------------------------------------


def test_every_real_payload_and_event_frame_parses_to_its_class() -> None:
    payloads = real_payloads()
    assert len(payloads) >= 60
    seen = set()
    for payload in payloads:
        event = parse_event(payload)
        expected = SDK_EVENT_TYPES.get(payload["event_type"], "RelayEvent")
        assert type(event).__name__ == expected, payload["event_type"]
        assert event.event_type == payload["event_type"]
        assert event.params is payload["params"]
        assert event.call_id == payload["params"].get("call_id", "")
        top = payload.get("timestamp")
        assert strict_equal(event.timestamp, float(top) if top is not None else 0.0)
        seen.add(expected)
    assert seen == set(CLASS_NAMES)


def test_real_dial_and_queue_and_receive_values() -> None:
    by_type: dict[str, list[Any]] = defaultdict(list)
    for payload in real_payloads():
        by_type[payload["event_type"]].append(parse_event(payload))
    dials = by_type["calling.call.dial"]
    assert {d.dial_state for d in dials} == {"answered", "failed"}
    assert [d.call.get("call_id") for d in dials if d.dial_state == "answered"] == ["call-id"]
    assert [d.call for d in dials if d.dial_state == "failed"] == [{}]
    queues = by_type["calling.call.queue"]
    assert {(q.queue_id, q.queue_name) for q in queues} == {("9f8e7d6c-5b4a-4321-9876-543210fedcba", "support_queue")}
    assert all(r.context for r in by_type["calling.call.receive"])
    assert by_type["signalwire.authorization.state"][0].params["authorization_state"]


# -- rejection --------------------------------------------------------------------------------------------

INVALID_CASES: list[tuple[Any, str]] = [
    ([], "an event payload is a JSON object, not an array"),
    ([{"event_type": "calling.call.state"}], "an event payload is a JSON object, not an array"),
    (None, "an event payload is a JSON object, not null"),
    ("calling.call.state", "an event payload is a JSON object, not a string"),
    (5, "an event payload is a JSON object, not a number"),
    (2.5, "an event payload is a JSON object, not a number"),
    (True, "an event payload is a JSON object, not a boolean"),
    ({"event_type": 5, "params": {}}, "event_type must be a string, not a number"),
    ({"event_type": None, "params": {}}, "event_type must be a string, not null"),
    ({"event_type": ["calling.call.state"]}, "event_type must be a string, not an array"),
    ({"event_type": {"name": "x"}}, "event_type must be a string, not an object"),
    ({"event_type": False}, "event_type must be a string, not a boolean"),
    ({"event_type": "calling.call.state", "params": None}, "params must be an object, not null"),
    ({"event_type": "calling.call.state", "params": []}, "params must be an object, not an array"),
    ({"event_type": "calling.call.state", "params": "call_id=1"}, "params must be an object, not a string"),
    ({"event_type": "calling.call.record", "params": 0}, "params must be an object, not a number"),
    ({"params": True}, "params must be an object, not a boolean"),
    ({"event_type": 1, "params": None}, "event_type must be a string, not a number"),
]


@pytest.mark.parametrize(("payload", "message"), INVALID_CASES)
def test_invalid_payloads_raise_invalid_event_saying_what_is_wrong(payload: Any, message: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    assert str(info.value) == message


# -- objects ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in CLASS_NAMES if any(isinstance(d, (dict, list)) for _, d in SDK_FIELDS[n])])
def test_mutable_defaults_are_not_shared(name: str) -> None:
    cls = event_class(name)
    event_type = next((t for t, n in SDK_EVENT_TYPES.items() if n == name), UNKNOWN_TYPE)
    containers = [n for n, d in SDK_FIELDS[name] if isinstance(d, (dict, list))]
    first, second = parse_event({"event_type": event_type, "params": {}}), cls.from_payload({"event_type": event_type})
    built = cls(event_type=event_type, params={})
    for field_name in containers:
        values = [getattr(first, field_name), getattr(second, field_name), getattr(built, field_name)]
        assert len({id(v) for v in values}) == 3, field_name
        mutable: Any = values[0]
        if isinstance(mutable, dict):
            mutable["added"] = 1
        else:
            mutable.append("added")
        assert not getattr(second, field_name) and not getattr(built, field_name)
        assert not getattr(parse_event({"event_type": event_type}), field_name)


def test_absent_params_are_not_shared_between_events() -> None:
    first, second = parse_event({"event_type": "x"}), parse_event({"event_type": "x"})
    assert first.params is not second.params
    first.params["added"] = 1
    assert parse_event({"event_type": "x"}).params == {} and second.params == {}


def test_payload_is_the_whole_payload() -> None:
    for payload in real_payloads():
        event = parse_event(payload)
        assert event.payload is payload
        assert event.payload.get("event_channel") == payload.get("event_channel")
    payload = {"event_type": "calling.call.play", "params": {}, "space_id": "s", "context": "c"}
    assert event_module.PlayEvent.from_payload(payload).payload is payload


def test_payload_of_a_constructed_event_is_rebuilt_from_its_fields() -> None:
    event = event_module.PlayEvent(event_type="calling.call.play", params={"call_id": "c"}, timestamp=2.0)
    assert event.payload["event_type"] == "calling.call.play"
    assert event.payload["params"] == {"call_id": "c"}


def test_payload_is_not_a_field_so_equality_is_the_sdks() -> None:
    a = parse_event({"event_type": "calling.call.play", "params": {"state": "x"}, "event_channel": "one"})
    b = parse_event({"event_type": "calling.call.play", "params": {"state": "x"}, "event_channel": "two"})
    assert a == b
    assert set(dataclasses.asdict(a)) == {*BASE_FIELDS, "control_id", "state"}


# -- robustness, by hypothesis -------------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Smaller values for the many keys of typed_params, so each example stays cheap to generate.
small_json = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=4), children, max_size=2),
    max_leaves=3,
)
event_types = st.sampled_from([*SDK_EVENT_TYPES, UNKNOWN_TYPE, "signalwire.authorization.state", ""]) | st.text(
    max_size=24
)
# Every key a typed field (or call_id, timestamp, the context fallback) is read from.
READ_KEYS = sorted(
    {"call_id", "timestamp", "protocol", "id", "name"}
    | {field_name for fields in SDK_FIELDS.values() for field_name, _ in fields}
)
record_values = small_json | st.fixed_dictionaries(
    {}, optional={"url": small_json, "duration": small_json, "size": small_json}
)
typed_params = st.fixed_dictionaries(
    {}, optional={key: record_values if key == "record" else small_json for key in READ_KEYS}
).flatmap(lambda known: st.dictionaries(st.text(max_size=8), small_json, max_size=2).map(lambda extra: extra | known))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_parses_or_raises_invalid_event(value: Any) -> None:
    try:
        event = parse_event(value)
    except InvalidEvent as exc:
        assert str(exc)
        return
    assert isinstance(event, RelayEvent)
    assert type(event.timestamp) is float and math.isfinite(event.timestamp)


payload_shapes = st.fixed_dictionaries(
    {},
    optional={
        "event_type": event_types | json_values,
        "params": typed_params | json_values,
        "timestamp": json_values,
        "event_channel": json_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(payload_shapes)
def test_payload_shaped_values_are_accepted_exactly_when_the_issue_says(payload: dict[str, Any]) -> None:
    valid = isinstance(payload.get("event_type", ""), str) and isinstance(payload.get("params", {}), dict)
    if not valid:
        with pytest.raises(InvalidEvent):
            parse_event(payload)
        return
    event = parse_event(payload)
    assert type(event).__name__ == SDK_EVENT_TYPES.get(payload.get("event_type", ""), "RelayEvent")


@settings(max_examples=200, deadline=None)
@given(event_types, typed_params, json_values)
def test_string_type_and_object_params_always_parse_to_the_right_class(
    event_type: str, params: dict[str, Any], timestamp: Any
) -> None:
    payload = {"event_type": event_type, "params": params, "timestamp": timestamp}
    name = SDK_EVENT_TYPES.get(event_type, "RelayEvent")
    for event in (parse_event(payload), event_class(name).from_payload(payload)):
        assert type(event).__name__ == name
        assert event.event_type == event_type
        assert event.params is params
        assert strict_equal(event.call_id, params.get("call_id", ""))
        assert type(event.timestamp) is float and math.isfinite(event.timestamp)
        for field_name, default in SDK_FIELDS[name]:
            assert strict_equal(getattr(event, field_name), sdk_value(name, field_name, default, params)), field_name
