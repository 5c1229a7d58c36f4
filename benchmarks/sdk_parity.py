"""Record what the official SDK makes of many payloads, so the tests can hold ``relay_cli.event`` to it.

Needs the official SDK (``pip install signalwire-sdk``, the ``bench`` extra); run it from anywhere:

    /tmp/venv/bin/python benchmarks/sdk_parity.py [--out tests/data/sdk_parity.jsonl]

It builds a varied set of payloads: every payload and ``signalwire.event`` frame of the real corpus
(``tests/data/real_frames.jsonl``), about 500 from the demo traffic (seed 7, fixed start so the file is
reproducible), and loose variants of every event type (numbers as strings, ``record`` flat, nested or
partial, keys present with null values, dial without ``call``, ``params`` or ``event_type`` missing,
unknown types, values of every JSON type where a typed field is read). It runs the SDK's
``parse_event`` on each and writes one JSON line per payload the SDK accepted:

    {"payload": ..., "class": "<SDK class name>", "fields": {<every SDK field but timestamp>: value}}

``timestamp`` is left out on purpose: relay reads it from the payload's top level, the SDK from
``params`` (PROTOCOL.md section 5). Payloads outside the domain relay must accept (an ``event_type``
that is not a string, ``params`` that is not an object) are skipped, since there relay deliberately
raises ``InvalidEvent`` where the SDK builds an event with a non-string type.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from run import real_payloads  # this directory is the script's, so on sys.path
from signalwire.relay import event as sdk

from relay_cli.emulator.flows import DemoTraffic

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "sdk_parity.jsonl"
DEMO_COUNT = 500
DEMO_START = 1_764_201_234.5
MUTATIONS = 200
MAX_BYTES = 1_500_000

CALL_ID = "4c1e2f7a-93b4-4d0e-8a51-6f2b7c9d0e13"
CONTROL_ID = "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
DEVICE = {"type": "phone", "params": {"from_number": "+15551230001", "to_number": "+15551230002"}}

# A full params object for every event type: each key a typed field of the SDK class is read from.
FULL_PARAMS: dict[str, dict[str, Any]] = {
    "calling.call.state": {
        "call_id": CALL_ID,
        "call_state": "ended",
        "end_reason": "hangup",
        "direction": "inbound",
        "device": DEVICE,
        "peer": {"call_id": "parent-leg", "node_id": "node"},
    },
    "calling.call.receive": {
        "call_id": CALL_ID,
        "call_state": "created",
        "direction": "inbound",
        "device": DEVICE,
        "node_id": "node-1@us-east",
        "project_id": "project-1",
        "context": "office",
        "protocol": "signalwire_abc",
        "segment_id": "segment-1",
        "tag": "tag-1",
    },
    "calling.call.play": {"call_id": CALL_ID, "control_id": CONTROL_ID, "state": "playing"},
    "calling.call.record": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "state": "finished",
        "record": {"audio": {"format": "mp3"}, "url": "https://x/r.mp3", "duration": 4.5, "size": 4096},
    },
    "calling.call.collect": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "state": "finished",
        "result": {"type": "digit", "params": {"digits": "12", "terminator": "#"}},
        "final": True,
    },
    "calling.call.connect": {
        "call_id": CALL_ID,
        "connect_state": "connected",
        "peer": {"call_id": "peer-leg", "node_id": "node", "device": DEVICE},
    },
    "calling.call.detect": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "detect": {"type": "machine", "params": {"event": "HUMAN"}},
    },
    "calling.call.fax": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "fax": {"type": "finished", "params": {"direction": "send", "pages": "1", "success": True}},
    },
    "calling.call.tap": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "state": "tapping",
        "tap": {"type": "audio", "params": {"direction": "listen"}},
        "device": {"type": "rtp", "params": {"addr": "127.0.0.1", "port": "5000"}},
    },
    "calling.call.stream": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "state": "streaming",
        "url": "wss://example.com/audio",
        "name": "stream-1",
    },
    "calling.call.send_digits": {"call_id": CALL_ID, "control_id": CONTROL_ID, "state": "finished"},
    "calling.call.dial": {
        "tag": "tag-1",
        "dial_state": "answered",
        "call": {"call_id": CALL_ID, "node_id": "node", "dial_winner": True, "device": DEVICE},
    },
    "calling.call.refer": {
        "call_id": CALL_ID,
        "state": "success",
        "sip_refer_to": "sip:alice@example.com",
        "sip_refer_response_code": "202",
        "sip_notify_response_code": "200",
    },
    "calling.call.denoise": {"call_id": CALL_ID, "denoised": True},
    "calling.call.pay": {"call_id": CALL_ID, "control_id": CONTROL_ID, "state": "finished", "for": "payment-completed"},
    "calling.call.queue": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "status": "enqueue",
        "id": "queue-1",
        "name": "support",
        "position": 2,
        "size": 5,
    },
    "calling.call.echo": {"call_id": CALL_ID, "state": "echoing"},
    "calling.call.transcribe": {
        "call_id": CALL_ID,
        "control_id": CONTROL_ID,
        "state": "finished",
        "url": "https://x/t.wav",
        "recording_id": "rec-1",
        "duration": 30.0,
        "size": 123456,
    },
    "calling.call.hold": {"call_id": CALL_ID, "state": "hold"},
    "calling.conference": {
        "call_id": CALL_ID,
        "conference_id": "conf-1",
        "name": "standup",
        "status": "participant-join",
    },
    "calling.error": {"call_id": CALL_ID, "code": "500", "message": "Server error"},
    "messaging.receive": {
        "message_id": "msg-1",
        "context": "office",
        "direction": "inbound",
        "from_number": "+15551230001",
        "to_number": "+15551230002",
        "body": "hello",
        "media": ["https://x/cat.jpg"],
        "segments": 1,
        "message_state": "received",
        "tags": ["t1"],
    },
    "messaging.state": {
        "message_id": "msg-2",
        "context": "office",
        "direction": "outbound",
        "from_number": "+15551230002",
        "to_number": "+15551230001",
        "body": "hi",
        "media": [],
        "segments": 2,
        "message_state": "undelivered",
        "reason": "carrier rejected",
        "tags": [],
    },
}

# Values typed fields should not get, but real or broken servers may send: one of every JSON type.
ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    7,
    -1,
    2.5,
    0.0,
    "",
    "7",
    "4.5",
    "true",
    "text",
    [],
    ["a", 1],
    {},
    {"nested": {"deep": [1, None]}},
)

UNKNOWN_TYPES = (
    "signalwire.authorization.state",
    "calling.call.future",
    "",
    "CALLING.CALL.STATE",
    " calling.call.state",
    "calling.call.state.extra",
    "messaging",
    "é.ü",
)


def payload_of(event_type: str, params: dict[str, Any], **top: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"event_type": event_type, "params": params}
    payload.update(top)
    return payload


def demo_payloads() -> list[dict[str, Any]]:
    demo = DemoTraffic(seed=7, start=DEMO_START)
    return list(itertools.islice(iter(demo), DEMO_COUNT))


def loose_variants() -> Iterator[Any]:
    """The shapes PROTOCOL.md warns about, and odd JSON values at every key a typed field reads."""
    for event_type, full in FULL_PARAMS.items():
        yield payload_of(event_type, copy.deepcopy(full), timestamp=1_764_201_234.25)
        yield payload_of(event_type, {})
        yield {"event_type": event_type}
        yield payload_of(event_type, {key: None for key in full})
        for index, key in enumerate(full):
            # A third of the odd values per key, rotating, so every value meets every kind of field.
            for value in ODD_VALUES[index % 3 :: 3]:
                params = copy.deepcopy(full)
                params[key] = copy.deepcopy(value)
                yield payload_of(event_type, params)
            params = copy.deepcopy(full)
            del params[key]
            yield payload_of(event_type, params)
        # params.timestamp is where the SDK reads it; it must not disturb the other fields.
        yield payload_of(event_type, {**copy.deepcopy(full), "timestamp": "1764201234.5"}, timestamp="x")

    record = FULL_PARAMS["calling.call.record"]
    base = {k: v for k, v in record.items() if k != "record"}
    flat = {"url": "flat.mp3", "duration": 4, "size": 4096}
    nested = {"url": "nested.mp3", "duration": 2.5, "size": 1024}
    record_shapes: list[dict[str, Any]] = [
        {**base, **flat},
        {**base, "record": dict(nested)},
        {**base, "record": dict(nested), **flat},
        {**base, "record": {"url": "nested.mp3"}, "duration": 4, "size": 4096},
        {**base, "record": {"duration": "2.5"}, "url": "flat.mp3"},
        {**base, "record": {"audio": {"format": "mp3", "stereo": False}}, **flat},
        {**base, "record": {}, **flat},
        {**base, "record": {"url": None, "duration": None, "size": None}, **flat},
        {**base, "record": {"size": "4096", "duration": "4"}},
        {**base, "duration": "4.0", "size": "4096", "url": 42},
        {**base, "record": None, **flat},
        {**base, "record": "nested.mp3", **flat},
        {**base, "record": ["nested.mp3"], **flat},
    ]
    for params in record_shapes:
        yield payload_of("calling.call.record", params)

    dial = FULL_PARAMS["calling.call.dial"]
    yield payload_of("calling.call.dial", {"tag": "tag-1", "dial_state": "failed", "node_id": "node"})
    yield payload_of("calling.call.dial", {"tag": "tag-1", "dial_state": "dialing"})
    yield payload_of("calling.call.dial", {**dial, "call": {**dial["call"], "dial_winner": "true"}})
    yield payload_of("calling.call.dial", {**dial, "call": None})

    receive = {k: v for k, v in FULL_PARAMS["calling.call.receive"].items() if k not in ("context", "protocol")}
    yield payload_of("calling.call.receive", {**receive, "protocol": "signalwire_fallback"})
    yield payload_of("calling.call.receive", {**receive, "context": None, "protocol": "signalwire_fallback"})
    yield payload_of("calling.call.receive", {**receive, "context": "", "protocol": "signalwire_fallback"})
    yield payload_of("calling.call.receive", receive, context="top-level-only")

    for final in (True, False, "true", "false", None, 0, 1):
        yield payload_of("calling.call.collect", {**FULL_PARAMS["calling.call.collect"], "final": final})

    for denoised in (True, False, "true", "false", 1, 0, None):
        yield payload_of("calling.call.denoise", {"call_id": CALL_ID, "denoised": denoised})

    queue = FULL_PARAMS["calling.call.queue"]
    yield payload_of("calling.call.queue", {**queue, "id": 17, "name": None, "position": "2", "size": "5"})
    yield payload_of("calling.call.queue", {**queue, "queue_id": "wrong-key", "queue_name": "wrong-key"})

    numbers_as_strings: dict[str, dict[str, Any]] = {
        "calling.call.transcribe": {"duration": "30.5", "size": "123456"},
        "calling.call.queue": {"position": "1", "size": "3"},
        "messaging.receive": {"segments": "2"},
        "messaging.state": {"segments": "2"},
        "calling.error": {"code": 500},
        "calling.call.refer": {"sip_refer_response_code": 202, "sip_notify_response_code": 200},
        "calling.call.record": {"record": {"duration": "4.5", "size": "4096", "url": "r.mp3"}},
    }
    for event_type, overrides in numbers_as_strings.items():
        yield payload_of(event_type, {**FULL_PARAMS.get(event_type, {}), **overrides})

    for event_type in UNKNOWN_TYPES:
        yield payload_of(event_type, {"call_id": CALL_ID, "authorization_state": "blob", "state": "x"})
        yield payload_of(event_type, {})

    # event_type missing: the SDK (and relay) fall back to "" and the base class.
    yield {"params": FULL_PARAMS["calling.call.state"]}
    yield {}
    yield {"timestamp": 1.5}
    for call_id in (None, 42, 4.2, True, ["a"], {"id": "x"}, ""):
        yield payload_of("calling.call.play", {"control_id": CONTROL_ID, "call_id": call_id})
    for timestamp in (None, "1764201234.5", 1764201234, True, "abc", [1], {"t": 1}):
        yield payload_of("calling.call.hold", {"call_id": CALL_ID, "state": "hold"}, timestamp=timestamp)
        yield payload_of("calling.call.hold", {"call_id": CALL_ID, "state": "hold", "timestamp": timestamp})

    # Outside relay's domain (skipped when writing): the SDK accepts some of these, relay rejects all.
    yield {"event_type": "calling.call.state", "params": None}
    yield {"event_type": 5, "params": {}}
    yield {"event_type": None, "params": {}}
    yield {"event_type": "calling.call.state", "params": []}
    yield ["calling.call.state"]


def mutated_demo(demo: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Demo payloads with a few params replaced by odd values, removed, or set to null."""
    rng = random.Random(7)
    for _ in range(MUTATIONS):
        payload = copy.deepcopy(rng.choice(demo))
        params = payload["params"]
        keys = sorted(params) + sorted(FULL_PARAMS.get(payload["event_type"], {}))
        for key in rng.sample(keys, k=min(len(keys), rng.randint(1, 3))):
            action = rng.random()
            if action < 0.2:
                params.pop(key, None)
            else:
                params[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        yield payload


def in_domain(payload: Any) -> bool:
    """A payload relay must parse: an object, event_type a string or absent, params an object or absent."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("event_type", ""), str)
        and isinstance(payload.get("params", {}), dict)
    )


def sdk_record(payload: dict[str, Any]) -> dict[str, Any] | None:
    """What the SDK parses ``payload`` to, or None when it raises."""
    snapshot = json.dumps(payload, allow_nan=False)
    try:
        event = sdk.parse_event(payload)
    except Exception:  # any failure of the SDK means it rejects the payload
        return None
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "timestamp"}
    return {"payload": json.loads(snapshot), "class": type(event).__name__, "fields": fields}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON Lines")
    args = parser.parse_args(argv)

    demo = demo_payloads()
    sources: list[tuple[str, Any]] = [("corpus", p) for p in real_payloads()]
    sources += [("demo", p) for p in demo]
    sources += [("loose", p) for p in loose_variants()]
    sources += [("mutated", p) for p in mutated_demo(demo)]

    seen: set[str] = set()
    lines: list[str] = []
    counts: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    for origin, payload in sources:
        key = json.dumps(payload, sort_keys=True)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        if not in_domain(payload):
            counts["outside domain"] += 1
            continue
        record = sdk_record(payload)
        if record is None:
            counts[f"rejected by the SDK ({origin})"] += 1
            continue
        counts[f"written ({origin})"] += 1
        classes[record["class"]] += 1
        lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")))

    text = "\n".join(lines) + "\n"
    size = len(text.encode())
    if size > MAX_BYTES:
        print(f"refusing to write {size} bytes (limit {MAX_BYTES})", file=sys.stderr)
        return 1
    args.out.write_text(text, encoding="utf-8")
    for name, count in sorted(counts.items()):
        print(f"{count:6d}  {name}")
    missing = sorted({cls.__name__ for cls in sdk.EVENT_CLASS_MAP.values()} - set(classes))
    print(f"{len(lines)} payloads, {len(classes)} classes, {size} bytes -> {args.out}")
    if missing:
        print(f"classes never produced: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
