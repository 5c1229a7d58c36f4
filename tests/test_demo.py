"""Behaviour of the demo traffic generator that the emulator and the benchmarks rely on."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections import Counter
from typing import Any

import orjson
import pytest

from relay_cli.emulator.flows import EVENT_TYPES, DemoTraffic

START = 1_764_201_234.123456
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CALL_STATES = ("created", "ringing", "answered", "ending", "ended")
# Events about a call that only make sense while it is up.
ACTION_TYPES = frozenset(EVENT_TYPES) - {
    "calling.call.state",
    "calling.call.receive",
    "calling.call.dial",
    "messaging.receive",
    "messaging.state",
}


def stream(n: int, **kwargs: Any) -> list[dict[str, Any]]:
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("start", START)
    return DemoTraffic(**kwargs).take(n)


def test_event_types_are_the_23_of_the_protocol_catalogue_in_order() -> None:
    assert len(EVENT_TYPES) == 23
    assert len(set(EVENT_TYPES)) == 23
    assert EVENT_TYPES[:2] == ("calling.call.state", "calling.call.receive")
    assert EVENT_TYPES[-3:] == ("calling.error", "messaging.receive", "messaging.state")


def test_same_seed_gives_the_identical_stream() -> None:
    assert stream(3000, seed=42) == stream(3000, seed=42)


def test_a_seed_gives_the_same_stream_as_every_earlier_release() -> None:
    """The stream for a seed is part of the contract (benchmarks, recorded demos, bug reports): this digest of
    10,000 payloads changes only with a change to the flows meant to change it, said in the CHANGELOG."""
    digest = hashlib.sha256()
    for payload in DemoTraffic(seed=1, start=1_764_201_234.0, contexts=("office", "home")).take(10_000):
        digest.update(orjson.dumps(payload) + b"\n")
    assert digest.hexdigest() == "5630cbfca9051ab19b5831ded7a3a9edf27c596ed33e4f3521f4db0a93c78e59"


def test_same_seed_without_start_differs_only_in_timestamps() -> None:
    a = DemoTraffic(seed=7).take(200)
    b = DemoTraffic(seed=7).take(200)
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k != "timestamp"} == {k: v for k, v in y.items() if k != "timestamp"}


def test_different_seeds_give_different_streams() -> None:
    assert stream(100, seed=1) != stream(100, seed=2)
    assert DemoTraffic(seed=1).project_id != DemoTraffic(seed=2).project_id


@pytest.mark.parametrize("seed", range(10))
def test_every_event_type_appears_within_the_first_2000_events(seed: int) -> None:
    seen = {p["event_type"] for p in stream(2000, seed=seed)}
    assert seen == set(EVENT_TYPES)


def test_every_payload_has_the_envelope_of_a_real_event() -> None:
    traffic = DemoTraffic(seed=3, start=START)
    for p in traffic.take(5000):
        assert isinstance(p["event_type"], str)
        assert isinstance(p["params"], dict)
        assert isinstance(p["timestamp"], float)
        assert p["event_channel"] == traffic.event_channel
        assert p["project_id"] == traffic.project_id
        assert p["space_id"] == traffic.space_id


def test_timestamps_start_at_start_never_decrease_and_keep_microseconds() -> None:
    payloads = stream(20_000, seed=4)
    stamps = [p["timestamp"] for p in payloads]
    assert stamps[0] == START
    assert all(a <= b for a, b in itertools.pairwise(stamps))
    assert all(round(t, 6) == t for t in stamps)
    assert stamps[-1] > stamps[0]


def test_default_ids_and_event_channel_have_the_real_formats() -> None:
    traffic = DemoTraffic(seed=5)
    assert UUID.match(traffic.project_id)
    assert UUID.match(traffic.space_id)
    match = re.fullmatch(r"signalwire_([0-9a-f]{64})_(.+)_(.+)", traffic.event_channel)
    assert match is not None
    assert UUID.match(match.group(2))
    assert match.group(3) == traffic.project_id


def test_given_ids_and_event_channel_are_used_on_every_payload() -> None:
    payloads = stream(500, project_id="p-1", space_id="s-1", event_channel="signalwire_abc")
    assert {(p["project_id"], p["space_id"], p["event_channel"]) for p in payloads} == {
        ("p-1", "s-1", "signalwire_abc")
    }


def test_receive_and_messaging_events_carry_only_the_given_contexts() -> None:
    contexts = ("office", "support")
    payloads = stream(10_000, seed=6, contexts=contexts)
    used: Counter[str] = Counter()
    for p in payloads:
        kind = p["event_type"]
        if kind == "calling.call.receive" or kind.startswith("messaging."):
            assert p["context"] in contexts
            assert p["params"]["context"] == p["context"]
            used[p["context"]] += 1
    assert set(used) == set(contexts)


def test_no_contexts_means_only_outbound_traffic() -> None:
    payloads = stream(10_000, seed=7, contexts=())
    kinds = Counter(p["event_type"] for p in payloads)
    assert kinds["calling.call.receive"] == 0
    assert kinds["messaging.receive"] == 0
    assert kinds["calling.call.dial"] > 0
    assert kinds["messaging.state"] > 0
    for p in payloads:
        if p["event_type"] == "messaging.state":
            assert p["params"]["direction"] == "outbound"


def test_calls_follow_their_lifecycle() -> None:
    """States only move forward, nothing follows `ended`, actions happen while the call is answered."""
    state: dict[str, str] = {}
    for p in stream(30_000, seed=8):
        kind, params = p["event_type"], p["params"]
        call_id = params.get("call_id")
        if kind in ("calling.call.receive", "calling.call.state"):
            assert call_id is not None
            new = params["call_state"]
            old = state.get(call_id)
            if old is None:
                assert new == "created"
                assert kind == "calling.call.state" or params["direction"] == "inbound"
            else:
                assert kind == "calling.call.state"
                assert CALL_STATES.index(new) > CALL_STATES.index(old), (call_id, old, new)
            if new in ("ending", "ended"):
                assert params["end_reason"]
            state[call_id] = new
        elif kind in ACTION_TYPES:
            assert state.get(call_id) == "answered", (kind, call_id, state.get(call_id))


def test_connected_peer_legs_name_their_parent_call() -> None:
    state: dict[str, str] = {}
    peers = 0
    for p in stream(30_000, seed=9):
        params = p["params"]
        if p["event_type"] in ("calling.call.receive", "calling.call.state"):
            state[params["call_id"]] = params["call_state"]
            if "peer" in params:
                peers += 1
                assert state.get(params["peer"]["call_id"]) == "answered"
        elif p["event_type"] == "calling.call.connect" and params["connect_state"] != "failed":
            assert UUID.match(params["peer"]["call_id"])
            assert params["peer"]["device"]["type"] == "phone"
    assert peers > 0


def test_dial_answered_names_the_winning_call_and_dial_failed_has_none() -> None:
    tags: dict[str, str] = {}
    state: dict[str, str] = {}
    answered = failed = 0
    for p in stream(30_000, seed=10):
        params = p["params"]
        if p["event_type"] == "calling.call.state":
            state[params["call_id"]] = params["call_state"]
            if params["call_state"] == "created" and "peer" not in params:
                assert params["created_by"] == "dial"
                assert params["direction"] == "outbound"
                tags[params["tag"]] = params["call_id"]
        elif p["event_type"] == "calling.call.dial":
            call_id = tags[params["tag"]]
            if params["dial_state"] == "answered":
                answered += 1
                assert params["call"]["call_id"] == call_id
                assert params["call"]["tag"] == params["tag"]
                assert params["call"]["dial_winner"] is True
                assert state[call_id] == "answered"
            elif params["dial_state"] == "failed":
                failed += 1
                assert "call" not in params
                assert state[call_id] == "ended"
            else:
                assert params["dial_state"] == "dialing"
                assert "call" not in params
    assert answered > 0
    assert failed > 0


def test_some_inbound_calls_end_without_being_answered() -> None:
    history: dict[str, list[str]] = {}
    for p in stream(30_000, seed=11):
        if p["event_type"] in ("calling.call.receive", "calling.call.state"):
            history.setdefault(p["params"]["call_id"], []).append(p["params"]["call_state"])
    unanswered = [h for h in history.values() if h[-1] == "ended" and "answered" not in h]
    assert unanswered
    assert all(h[:2] == ["created", "ringing"] for h in unanswered)


def test_actions_carry_control_ids_and_their_lifecycles_end() -> None:
    last: dict[tuple[str, str], str] = {}
    for p in stream(30_000, seed=12):
        kind, params = p["event_type"], p["params"]
        if kind in ("calling.call.play", "calling.call.record", "calling.call.tap", "calling.call.stream"):
            assert UUID.match(params["control_id"])
            last[(kind, params["control_id"])] = params["state"]
        if kind == "calling.call.record" and params["state"] == "finished":
            record = params.get("record", {})
            assert (record.get("url") or params.get("url", "")).startswith("https://")
        if kind == "calling.call.collect":
            assert params["result"]["type"] in ("digit", "speech", "no_input", "no_match", "error")
    ends = Counter(state for state in last.values())
    assert set(ends) <= {"finished", "error", "no_input", "tapping", "streaming", "playing", "recording"}
    assert ends["finished"] > 0


def test_outbound_messages_move_from_queued_to_a_final_state() -> None:
    history: dict[str, list[dict[str, Any]]] = {}
    for p in stream(30_000, seed=13):
        if p["event_type"] == "messaging.state":
            history.setdefault(p["params"]["message_id"], []).append(p["params"])
        elif p["event_type"] == "messaging.receive":
            assert p["params"]["message_state"] == "received"
            assert p["params"]["direction"] == "inbound"
    finals: Counter[str] = Counter()
    for states in history.values():
        assert states[0]["message_state"] == "queued"
        for params in states:
            has_reason = params["message_state"] in ("undelivered", "failed")
            assert ("reason" in params) == has_reason
        finals[states[-1]["message_state"]] += 1
    assert finals["delivered"] > finals["undelivered"] > 0


def test_roughly_seven_in_ten_flows_are_calls() -> None:
    calls = messages = 0
    for p in stream(50_000, seed=14):
        kind, params = p["event_type"], p["params"]
        if kind == "calling.call.receive" or (
            kind == "calling.call.state" and params["call_state"] == "created" and "peer" not in params
        ):
            calls += 1
        elif kind == "messaging.receive" or (kind == "messaging.state" and params["message_state"] == "queued"):
            messages += 1
    assert 0.62 < calls / (calls + messages) < 0.78


def test_with_concurrency_one_calls_do_not_overlap() -> None:
    live: set[str] = set()
    for p in stream(5000, seed=15, concurrency=1):
        params = p["params"]
        if p["event_type"] in ("calling.call.receive", "calling.call.state") and "peer" not in params:
            if params["call_state"] == "created":
                assert not live
                live.add(params["call_id"])
            elif params["call_state"] == "ended":
                live.discard(params["call_id"])


def test_with_higher_concurrency_calls_interleave() -> None:
    live: set[str] = set()
    most = 0
    for p in stream(5000, seed=15, concurrency=8):
        params = p["params"]
        if p["event_type"] in ("calling.call.receive", "calling.call.state"):
            if params["call_state"] == "ended":
                live.discard(params["call_id"])
            else:
                live.add(params["call_id"])
            most = max(most, len(live))
    assert most >= 3


def test_payloads_are_json_serialisable() -> None:
    for p in stream(5000, seed=16):
        assert json.loads(json.dumps(p)) == p


def test_each_payload_is_a_fresh_object_that_consumers_may_mutate() -> None:
    pristine = stream(5000, seed=17)
    kept = []
    for p in DemoTraffic(seed=17, start=START):
        kept.append(copy.deepcopy(p))
        for value in p["params"].values():
            if isinstance(value, dict):
                value.clear()
            elif isinstance(value, list):
                value.append("mutated")
        p["params"].clear()
        p.clear()
        if len(kept) == len(pristine):
            break
    assert kept == pristine


def test_take_and_iteration_continue_the_same_stream() -> None:
    traffic = DemoTraffic(seed=18, start=START)
    first = traffic.take(10)
    second = traffic.take(10)
    third = [next(iter(traffic)) for _ in range(5)]
    assert first + second + third == stream(25, seed=18)
    assert traffic.take(0) == []


def test_ids_are_uuids_and_numbers_are_e164() -> None:
    for p in stream(3000, seed=19):
        params = p["params"]
        if "call_id" in params:
            assert UUID.match(params["call_id"])
        device = params.get("device")
        if device and device["type"] == "phone":
            for number in device["params"].values():
                assert re.fullmatch(r"\+1[2-9]\d{9}", number)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        DemoTraffic(concurrency=0)
    with pytest.raises(TypeError, match="contexts"):
        DemoTraffic(contexts="office")
    with pytest.raises(ValueError, match="negative"):
        DemoTraffic().take(-1)


def test_inbound_calls_under_way_are_known_until_their_last_event() -> None:
    traffic = DemoTraffic(seed=6, start=START, contexts=("office",))
    under_way: dict[str, dict[str, Any]] = {}
    ended = 0
    for payload in itertools.islice(traffic, 5000):  # one at a time: the bookkeeping is checked as it goes
        params = payload["params"]
        if payload["event_type"] == "calling.call.receive":
            under_way[params["call_id"]] = params
        elif params.get("call_state") == "ended" and params.get("call_id") in under_way:
            del under_way[params["call_id"]]
            assert params["call_id"] in traffic.ended_inbound_calls
            ended += 1
        assert under_way.keys() <= traffic.inbound_calls.keys()
        assert all(traffic.inbound_calls[call_id] is p for call_id, p in under_way.items())
    assert ended > 50
    assert len(traffic.ended_inbound_calls) <= 1024


def test_the_stream_moves_only_along_the_lifecycles_of_the_shared_data() -> None:
    from relay_cli.lifecycles import ACTIONS, CALL, COLLECT_RESULTS, END_REASONS, INBOUND_MESSAGE, MESSAGE

    calls: dict[str, int] = {}
    messages: dict[str, int] = {}
    actions: dict[tuple[str, str], str] = {}
    for p in DemoTraffic(seed=9, contexts=("office",)).take(20_000):
        event_type, params = p["event_type"], p["params"]
        if event_type in CALL.event_types:
            rank = CALL.rank[params["call_state"]]
            assert rank > calls.get(params["call_id"], -1), params
            calls[params["call_id"]] = rank
            if "end_reason" in params:
                assert params["end_reason"] in END_REASONS
        elif event_type in MESSAGE.event_types:
            rank = MESSAGE.rank[params["message_state"]]
            assert rank > messages.get(params["message_id"], -1), params
            messages[params["message_id"]] = rank
        elif event_type in INBOUND_MESSAGE.event_types:
            assert params["message_state"] in INBOUND_MESSAGE.states
        elif event_type == "calling.call.collect":
            assert params["result"]["type"] in COLLECT_RESULTS
        elif event_type in ACTIONS:
            lifecycle = ACTIONS[event_type]
            key = (event_type, params.get("control_id") or params.get("tag") or params["call_id"])
            state = params[lifecycle.key]
            assert lifecycle.may_follow(actions.get(key, ""), state) is not False, (key, state)
            actions[key] = state
    assert len(calls) > 100 and len(messages) > 50 and len(actions) > 100


def test_one_flow_is_a_public_generator_that_can_go_on_a_sessions_outbox() -> None:
    from relay_cli.emulator.sessions import EmulatorCore, Peer

    traffic = DemoTraffic(seed=4, contexts=("office",))
    steps = list(traffic.outbound_message())
    assert [s[1] for s in steps] == ["messaging.state"] * len(steps)
    assert steps[0][2]["message_state"] == "queued" and steps[0][0] == 0

    now = [50.0]
    written: list[bytes] = []

    class Wire(Peer):
        def write(self, frames: Any) -> None:
            written.extend(frames)

    core = EmulatorCore(mode="app", clock=lambda: now[0])
    peer = Wire("client:1")
    frame: dict[str, Any] = {"jsonrpc": "2.0", "id": "c", "method": "signalwire.connect"}
    frame["params"] = {"authentication": {"project": "p", "token": "t"}}
    session = core.connect(peer, frame).session
    assert session is not None
    assert core.schedule_flow(session, steps) == len(steps)
    last_due = 50.0 + sum(s[0] for s in steps) / 1_000_000
    assert core.next_due() == 50.0
    now[0] = last_due
    core.tick()
    got = [json.loads(raw)["params"] for raw in written]
    assert [g["params"] for g in got] == [s[2] for s in steps]
    assert all(g["event_channel"] == session.protocol and g["context"] == "office" for g in got)
    assert core.next_due() is None
