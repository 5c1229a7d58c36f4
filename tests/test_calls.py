"""Behaviour of the per-call timelines: grouping, block format, ordering, flags, bounds and robustness."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from harness import relay
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_cli.emulator.flows import EVENT_TYPES, DemoTraffic
from relay_cli.event import event_time
from relay_cli.views.phrases import describer
from relay_cli.views.text import Style, call_sgr
from relay_cli.views.timeline import CallTracker

T0 = 1_764_201_600.0
CALL = "3f2a9c1b-7d4e-4c1a-9b2f-0a1b2c3d4e5f"
OTHER = "77aa0000-1111-4222-8333-444455556666"
PEER = "c0ffee00-aaaa-4bbb-8ccc-dddddddddddd"
PLAIN = Style(False)
REAL_FRAMES = Path(__file__).parent / "data" / "real_frames.jsonl"


def real_payloads() -> list[dict[str, Any]]:
    """The bare payloads of the real corpus and the params of its ``signalwire.event`` frames."""
    payloads: list[dict[str, Any]] = []
    for line in REAL_FRAMES.read_text(encoding="utf-8").splitlines():
        record: dict[str, Any] = json.loads(line) if line.strip() else {}
        data: dict[str, Any] = record.get("data", {})
        if record.get("kind") == "payload":
            payloads.append(data)
        elif record.get("kind") == "frame" and data.get("method") == "signalwire.event":
            payloads.append(data["params"])
    return payloads


def ev(event_type: str, at: float | None, **params: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"event_type": event_type, "params": params}
    if at is not None:
        payload["timestamp"] = T0 + at
    return payload


def state(call_id: str, call_state: str, at: float | None, **extra: Any) -> dict[str, Any]:
    return ev("calling.call.state", at, call_id=call_id, call_state=call_state, **extra)


def device(src: str, dst: str) -> dict[str, Any]:
    return {"type": "phone", "params": {"from_number": src, "to_number": dst}}


def inbound(call_id: str, at: float = 0.0, **extra: Any) -> dict[str, Any]:
    payload = ev(
        "calling.call.receive",
        at,
        call_id=call_id,
        call_state="created",
        direction="inbound",
        context="office",
        device=device("+15551230000", "+15557650000"),
        **extra,
    )
    payload["context"] = "office"
    return payload


def run(tracker: CallTracker, payloads: Iterable[dict[str, Any]]) -> list[str]:
    """What each feed returned, then what finish returned."""
    return [tracker.feed(p) for p in payloads] + [tracker.finish()]


def blocks(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block]


def headers(text: str) -> list[str]:
    return [block.splitlines()[0] for block in blocks(text)]


def test_an_inbound_lifecycle_gives_exactly_the_expected_block() -> None:
    tracker = CallTracker(style=PLAIN)
    payloads = [
        inbound(CALL),
        state(CALL, "ringing", 0.812),
        state(CALL, "answered", 2.104),
        ev("calling.call.play", 2.3, call_id=CALL, control_id="p1", state="playing"),
        ev("calling.call.play", 9.4, call_id=CALL, control_id="p1", state="finished"),
        ev(
            "calling.call.collect",
            9.6,
            call_id=CALL,
            control_id="c1",
            result={"type": "digit", "params": {"digits": "1234", "terminator": "#"}},
        ),
        state(CALL, "ended", 31.0, end_reason="hangup"),
    ]
    out = run(tracker, payloads)
    assert out[:-2] == [""] * 6
    assert out[-1] == ""
    assert out[-2] == (
        f"call {CALL}  inbound  +15551230000 → +15557650000  (context office)\n"
        "  +0.000s  receive     created\n"
        "  +0.812s  state       ringing\n"
        "  +2.104s  state       answered\n"
        "  +2.300s  play        playing\n"
        "  +9.400s  play        finished\n"
        "  +9.600s  collect     digit 1234#\n"
        "  +31.000s state       ended (hangup)\n"
        "\n"
    )


def test_times_are_relative_to_the_first_timed_event_and_read_every_timestamp_form() -> None:
    untimed = inbound(CALL)
    del untimed["timestamp"]
    as_string = state(CALL, "ringing", None)
    as_string["timestamp"] = str(T0 + 1.5)
    in_params = state(CALL, "answered", None, timestamp=T0 + 2.25)
    late = state(CALL, "ended", 4.0, end_reason="hangup")
    first = ev("calling.call.play", 1.0, call_id=CALL, control_id="p", state="playing")
    text = "".join(run(CallTracker(style=PLAIN), [untimed, first, as_string, in_params, late]))
    clocks = [line.split()[0] for line in text.splitlines()[1:] if line]
    assert clocks == ["?", "+0.000s", "+0.500s", "+1.250s", "+3.000s"]
    assert event_time({"timestamp": "nope", "params": {"timestamp": 7}}) == 7.0
    assert event_time({"timestamp": True, "params": []}) is None
    assert event_time({"timestamp": float("nan")}) is None
    assert event_time({"timestamp": 0.0}) is None


def test_long_calls_widen_the_time_column_so_the_event_column_stays_aligned() -> None:
    payloads = [inbound(CALL), state(CALL, "answered", 1.0), state(CALL, "ended", 123.0, end_reason="hangup")]
    lines = "".join(run(CallTracker(style=PLAIN), payloads)).splitlines()[1:4]
    assert [line.index("receive" if i == 0 else "state") for i, line in enumerate(lines)] == [12, 12, 12]


def test_dial_events_join_by_call_id_and_a_failed_dial_joins_by_tag() -> None:
    tracker = CallTracker(style=PLAIN)
    out_device = device("+15550000001", "+15550000002")
    won = [
        state(CALL, "created", 0.0, tag="tag-1", created_by="dial", direction="outbound", device=out_device),
        ev("calling.call.dial", 0.01, dial_state="dialing", tag="tag-1"),
        state(CALL, "ringing", 0.5),
        state(CALL, "answered", 3.0),
        ev("calling.call.dial", 3.01, dial_state="answered", tag="tag-1", call={"call_id": CALL, "dial_winner": True}),
        state(CALL, "ended", 9.0, end_reason="hangup"),
    ]
    out = run(tracker, won)
    assert out[-2].splitlines() == [
        f"call {CALL}  outbound  +15550000001 → +15550000002",
        "  +0.000s  state       created",
        "  +0.010s  dial        dialing",
        "  +0.500s  state       ringing",
        "  +3.000s  state       answered",
        "  +3.010s  dial        answered winner 3f2a9c1b",
        "  +9.000s  state       ended (hangup)",
        "",
    ]
    lost = [
        state(OTHER, "created", 20.0, tag="tag-2", created_by="dial", direction="outbound", device=out_device),
        ev("calling.call.dial", 20.01, dial_state="dialing", tag="tag-2"),
        state(OTHER, "ringing", 20.5),
        state(OTHER, "ending", 25.0, end_reason="busy"),
        state(OTHER, "ended", 25.1, end_reason="busy"),
        ev("calling.call.dial", 25.11, dial_state="failed", tag="tag-2"),
    ]
    out = [tracker.feed(p) for p in lost]
    assert out[:-1] == [""] * 5, "the ended leg waits for its dial's outcome"
    assert blocks(out[-1])[0].splitlines()[-1] == "  +5.110s  dial        failed"
    assert "⚠" not in out[-1]
    assert tracker.finish() == ""


def test_an_ended_call_whose_dial_never_reports_is_written_after_a_grace_period() -> None:
    tracker = CallTracker(style=PLAIN)
    assert tracker.feed(state(CALL, "created", 0.0, tag="t", created_by="dial")) == ""
    assert tracker.feed(state(CALL, "ended", 1.0, end_reason="error")) == ""
    assert tracker.feed(ev("messaging.receive", 2.0, message_id="m1", message_state="received")) == ""
    text = tracker.feed(ev("messaging.receive", 7.0, message_id="m2", message_state="received"))
    assert headers(text) == [f"call {CALL}", "message m1", "message m2"]


def test_a_failed_dial_whose_call_was_never_seen_gets_a_block_of_its_own() -> None:
    tracker = CallTracker(style=PLAIN)
    text = tracker.feed(ev("calling.call.dial", 0.0, dial_state="failed", tag="lonely"))
    assert text == "dial lonely  (call id unknown)\n  +0.000s  dial        failed\n\n"


def test_a_connect_peer_leg_is_linked_both_ways() -> None:
    peer_info = {"call_id": PEER, "device": device("+15557650000", "+15559999999")}
    payloads = [
        inbound(CALL),
        state(CALL, "answered", 1.0),
        ev("calling.call.connect", 2.0, call_id=CALL, connect_state="connecting", peer=peer_info),
        state(PEER, "created", 2.1, peer={"call_id": CALL}, direction="outbound", device=peer_info["device"]),
        state(PEER, "answered", 5.0, peer={"call_id": CALL}),
        ev("calling.call.connect", 5.1, call_id=CALL, connect_state="connected", peer=peer_info),
        ev("calling.call.connect", 30.0, call_id=CALL, connect_state="disconnected", peer=peer_info),
        state(PEER, "ended", 30.2, end_reason="hangup", peer={"call_id": CALL}),
        state(CALL, "ended", 40.0, end_reason="hangup"),
    ]
    out = run(CallTracker(style=PLAIN), payloads)
    assert out[:-2] == [""] * 8, "the peer leg ends first but waits behind its parent"
    parent, leg = blocks(out[-2])
    assert parent.splitlines()[0].endswith("(context office)  peer leg c0ffee00")
    assert "  connect     connected peer c0ffee00" in parent
    assert leg.splitlines()[0] == f"call {PEER}  outbound  +15557650000 → +15559999999  peer of 3f2a9c1b"


def test_a_call_without_an_end_state_is_flagged_by_finish() -> None:
    tracker = CallTracker(style=PLAIN)
    assert run(tracker, [inbound(CALL), state(CALL, "answered", 1.0)])[:-1] == ["", ""]
    tracker = CallTracker(style=PLAIN)
    for p in (inbound(CALL), state(CALL, "answered", 1.0)):
        tracker.feed(p)
    text = tracker.finish()
    assert headers(text) == [f"call {CALL}  inbound  +15551230000 → +15557650000  (context office)  ⚠ no end state"]
    assert tracker.finish() == "", "finish forgets what it wrote"


def test_events_out_of_lifecycle_order_are_flagged_inline_and_in_the_header() -> None:
    tracker = CallTracker(style=PLAIN)
    payloads = [
        inbound(OTHER),
        inbound(CALL, 1.0),
        state(CALL, "answered", 2.0),
        state(CALL, "ringing", 3.0),
        ev("calling.call.record", 4.0, call_id=CALL, control_id="r1", state="finished", url="x.wav"),
        ev("calling.call.play", 5.0, call_id=CALL, control_id="p1", state="playing"),
        ev("calling.call.play", 6.0, call_id=CALL, control_id="p1", state="finished"),
        ev("calling.call.play", 7.0, call_id=CALL, control_id="p1", state="paused"),
        state(CALL, "ended", 8.0, end_reason="hangup"),
        ev("calling.call.play", 9.0, call_id=CALL, control_id="p2", state="playing"),
        state(CALL, "answered", 9.5),
        state(OTHER, "ended", 10.0, end_reason="hangup"),
    ]
    out = [tracker.feed(p) for p in payloads]
    block = blocks(out[-1])[1]
    assert block.splitlines()[0].endswith("(context office)  ⚠ out of order")
    flags = [line.split("⚠ out of order: ")[1] for line in block.splitlines()[1:] if "⚠" in line]
    assert flags == [
        "ringing after answered",
        "record finished without recording",
        "play paused after finished",
        "play after ended",
        "answered after ended",
    ]
    assert "  +2.000s  state       ringing  ⚠ out of order: ringing after answered" in block
    late = tracker.feed(state(CALL, "ringing", 11.0))
    assert headers(late) == [f"call {CALL}  ⚠ out of order  ⚠ continued: earlier events were written above"]
    assert "ringing after ended" in late


def test_a_call_following_its_lifecycle_has_no_flags_even_when_an_action_without_control_id_repeats() -> None:
    payloads = [
        inbound(CALL),
        state(CALL, "ringing", 0.1),
        state(CALL, "answered", 0.5),
        ev("calling.call.play", 1.0, call_id=CALL, control_id="p", state="playing"),
        ev("calling.call.play", 2.0, call_id=CALL, control_id="p", state="paused"),
        ev("calling.call.play", 3.0, call_id=CALL, control_id="p", state="playing"),
        ev("calling.call.play", 4.0, call_id=CALL, control_id="p", state="finished"),
        ev("calling.call.hold", 5.0, call_id=CALL, state="hold"),
        ev("calling.call.hold", 6.0, call_id=CALL, state="unhold"),
        ev("calling.call.echo", 6.1, call_id=CALL, state="echoing"),
        ev("calling.call.echo", 6.2, call_id=CALL, state="finished"),
        ev("calling.call.echo", 6.3, call_id=CALL, state="echoing"),
        ev("calling.call.echo", 6.4, call_id=CALL, state="finished"),
        state(CALL, "ending", 7.0, end_reason="hangup"),
        state(CALL, "ended", 7.1, end_reason="hangup"),
    ]
    assert "⚠" not in "".join(run(CallTracker(style=PLAIN), payloads))


def test_a_call_id_prefix_narrows_to_that_call_and_its_peer_leg() -> None:
    payloads = [
        inbound(OTHER),
        inbound(CALL, 0.5),
        ev("calling.call.connect", 1.0, call_id=CALL, connect_state="connecting", peer={"call_id": PEER}),
        state(PEER, "created", 1.1, peer={"call_id": CALL}),
        ev("messaging.receive", 1.2, message_id="m-1", message_state="received"),
        state(PEER, "ended", 2.0, end_reason="hangup", peer={"call_id": CALL}),
        state(OTHER, "ended", 3.0, end_reason="hangup"),
        ev("calling.call.dial", 3.1, dial_state="failed", tag="nobody"),
        state(CALL, "ended", 4.0, end_reason="hangup"),
    ]
    text = "".join(run(CallTracker(style=PLAIN, call_id="3f2a"), payloads))
    assert [h.split()[1] for h in headers(text)] == [CALL, PEER]
    assert "⚠" not in text


def test_blocks_come_out_in_first_event_order_holding_finished_calls_behind_older_open_ones() -> None:
    tracker = CallTracker(style=PLAIN)
    assert tracker.feed(inbound(CALL)) == ""
    assert tracker.feed(inbound(OTHER, 1.0)) == ""
    assert tracker.feed(state(OTHER, "ended", 2.0, end_reason="hangup")) == "", "held behind the older call"
    assert tracker.feed(ev("messaging.receive", 2.5, message_id="m-1", message_state="received")) == ""
    assert tracker.held == 3
    text = tracker.feed(state(CALL, "ended", 3.0, end_reason="busy"))
    assert [h.split()[1] for h in headers(text)] == [CALL, OTHER, "m-1"]
    assert tracker.held == 0


def test_more_than_max_open_held_flushes_the_oldest_flagged() -> None:
    tracker = CallTracker(style=PLAIN, max_open=3)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(6)]
    out = [tracker.feed(inbound(call_id, float(n))) for n, call_id in enumerate(ids)]
    assert out[:3] == ["", "", ""]
    assert [headers(text) for text in out[3:]] == [
        [f"call {ids[n]}  inbound  +15551230000 → +15557650000  (context office)  ⚠ no end state (over 3 held)"]
        for n in range(3)
    ]
    assert tracker.held == 3
    assert len(headers(tracker.feed(state(ids[3], "ended", 9.0)))) == 1
    assert tracker.feed(state(ids[0], "ended", 10.0)) == "", "held behind the two calls still open"
    assert headers(tracker.finish())[2] == f"call {ids[0]}  ⚠ continued: earlier events were written above"


def test_messages_are_grouped_by_message_id_with_the_failure_reason() -> None:
    body = {"from_number": "+15550000001", "to_number": "+15550000002", "direction": "outbound", "body": "Hi there"}
    payloads = [
        ev("messaging.state", 0.0, message_id="m-1", message_state="queued", **body),
        ev("messaging.receive", 0.1, message_id="m-2", message_state="received", direction="inbound", body="yo"),
        ev("messaging.state", 0.2, message_id="m-1", message_state="initiated", **body),
        ev("messaging.state", 1.0, message_id="m-1", message_state="failed", reason="Carrier rejected", **body),
    ]
    payloads.append(ev("messaging.receive", 2.0, message_id="m-3", body="no state given"))
    out = run(CallTracker(style=PLAIN), payloads)
    assert out[:3] == ["", "", ""]
    assert out[4] == 'message m-3\n  +0.000s  receive     "no state given"\n\n'
    assert out[3] == (
        "message m-1  outbound  +15550000001 → +15550000002\n"
        '  +0.000s  state       queued "Hi there"\n'
        "  +0.200s  state       initiated\n"
        "  +1.000s  state       failed (Carrier rejected)\n"
        "\n"
        "message m-2  inbound\n"
        '  +0.000s  receive     received "yo"\n'
        "\n"
    )


def test_control_characters_in_numbers_ids_and_bodies_are_escaped() -> None:
    evil = "+1555\x1b[31m\u202e"
    bell_title = "a\x1b]0;x\x07"
    payloads = [
        ev("calling.call.receive", 0.0, call_id="id\x07", call_state="created", device=device(evil, "+1\r\n")),
        state("id\x07", "ended", 1.0, end_reason="hang\x1bup"),
        ev("messaging.receive", 2.0, message_id="m\n", message_state="received", from_number=evil, body=bell_title),
    ]
    text = "".join(run(CallTracker(style=PLAIN), payloads))
    assert not any(ch in text for ch in "\x1b\x07\r\u202e")
    assert "call id\\x07  +1555\\x1b[31m\\u202e → +1\\x0d\\x0a" in text
    assert "ended (hang\\x1bup)" in text
    assert 'received "a\\x1b]0;x\\x07"' in text
    assert "message m\\x0a" in text


def test_colours_come_from_the_style_and_vanish_without_it() -> None:
    payloads = [inbound(CALL), state(CALL, "ended", 1.0, end_reason="hangup")]
    coloured = "".join(run(CallTracker(style=Style(True)), payloads))
    assert coloured.startswith(f"\x1b[1mcall \x1b[{call_sgr(CALL)}m{CALL}\x1b[0m\x1b[1m")
    assert "\x1b[2mreceive    \x1b[0m created" in coloured
    assert "\x1b" not in "".join(run(CallTracker(style=PLAIN), payloads))


def test_events_of_neither_calls_nor_messages_are_ignored() -> None:
    tracker = CallTracker(style=PLAIN)
    assert tracker.feed(ev("signalwire.authorization.state", 0.0, authorization_state="secret")) == ""
    assert tracker.feed(ev("video.room.started", 0.0, call_id="v1")) == ""
    assert tracker.feed(ev("calling.call.stream", 0.0, state="streaming")) == "", "no call id: nothing to join"
    assert tracker.held == 0
    assert tracker.finish() == ""


def test_every_real_corpus_payload_is_taken_without_raising() -> None:
    tracker = CallTracker(style=Style(True))
    text = "".join(run(tracker, real_payloads()))
    assert "AENC-TESTLEAK" not in text
    assert "call 08219786-e1a4-48b1-bda0-e3602c8fc84c" in re.sub(r"\x1b\[[0-9;]*m", "", text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
IDS = st.sampled_from(["a", "ab", "b"]) | JSON
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "call_id": IDS,
        "message_id": IDS,
        "tag": IDS,
        "call_state": st.sampled_from(["created", "ringing", "answered", "ending", "ended"]) | JSON,
        "state": st.sampled_from(["playing", "finished", "paused"]) | JSON,
        "message_state": st.sampled_from(["queued", "sent", "delivered", "failed", "received"]) | JSON,
        "dial_state": st.sampled_from(["dialing", "answered", "failed"]) | JSON,
        "call": JSON | st.fixed_dictionaries({"call_id": IDS, "device": JSON}),
        "peer": JSON | st.fixed_dictionaries({"call_id": IDS}),
        "device": JSON | st.fixed_dictionaries({"params": st.dictionaries(st.sampled_from(["from", "to"]), JSON)}),
        "result": JSON | st.fixed_dictionaries({"type": JSON, "params": JSON}),
        "record": JSON,
        "detect": JSON,
        "fax": JSON,
        "tap": JSON,
        "control_id": JSON,
        "end_reason": JSON,
        "timestamp": JSON,
        "created_by": st.just("dial") | JSON,
    },
)
PAYLOADS = JSON | st.fixed_dictionaries(
    {"event_type": st.sampled_from(EVENT_TYPES) | st.text(alphabet=string.printable, max_size=12) | JSON},
    optional={"params": PARAMS | JSON, "timestamp": JSON | st.floats(0, 2e9), "context": JSON},
)


@settings(max_examples=300, deadline=None, derandomize=True)  # the same examples every run
@given(
    payloads=st.lists(PAYLOADS, max_size=12),
    call_id=st.none() | st.sampled_from(["a", "b"]),
    max_open=st.integers(1, 4),
    color=st.booleans(),
)
def test_odd_payloads_never_raise(payloads: list[Any], call_id: str | None, max_open: int, color: bool) -> None:
    tracker = CallTracker(style=Style(color), call_id=call_id, max_open=max_open)
    for payload in payloads * 2:
        assert isinstance(tracker.feed(payload), str)
        assert tracker.held <= max_open
    assert isinstance(tracker.finish(), str)
    assert tracker.held == 0


def _demo(n: int) -> list[dict[str, Any]]:
    return list(islice(DemoTraffic(seed=1, contexts=("office",), start=T0), n))


def test_fifty_thousand_demo_events_end_in_ended_blocks_or_flags_with_bounded_memory() -> None:
    payloads = _demo(50_000)
    tracker = CallTracker(style=PLAIN)
    pieces: list[str] = []
    most_held = 0
    for payload in payloads:
        pieces.append(tracker.feed(payload))
        most_held = max(most_held, tracker.held)
    pieces.append(tracker.finish())
    text = "".join(pieces)
    call_blocks = [b for b in blocks(text) if b.startswith("call ")]
    assert len(call_blocks) > 1_000
    for block in call_blocks:
        head, *lines = block.splitlines()
        if "⚠ no end state" in head:
            continue
        assert "⚠" not in block, block
        kinds = [line.split()[1:3] for line in lines]
        ended = kinds.index(["state", "ended"])
        assert all(kind[0] == "dial" for kind in kinds[ended + 1 :]), block
    unfinished = [b for b in blocks(text) if "⚠ no" in b.splitlines()[0]]
    assert 0 < len(unfinished) < 40, "only what was still going when the stream stopped"
    event_lines = sum(len(b.splitlines()) - 1 for b in blocks(text))
    tracked = sum(1 for p in payloads if p["event_type"].split(".")[0] in ("calling", "messaging"))
    assert event_lines == tracked, "every call and message event lands in exactly one block"
    assert most_held < 300, "finished calls wait only behind the few long ones still open"


def test_a_small_max_open_bounds_what_is_held_over_demo_traffic() -> None:
    tracker = CallTracker(style=PLAIN, max_open=20)
    for payload in _demo(20_000):
        tracker.feed(payload)
        assert tracker.held <= 20
    tracker.finish()
    assert tracker.held == 0


def test_an_ended_call_waiting_for_its_dial_behind_an_older_call_is_written_once_the_grace_ends() -> None:
    tracker = CallTracker(style=PLAIN)
    assert tracker.feed(inbound(CALL)) == ""
    assert tracker.feed(state(OTHER, "created", 1.0, tag="t", created_by="dial")) == ""
    assert tracker.feed(state(OTHER, "ended", 2.0, end_reason="error")) == "", "held behind the older call"
    text = tracker.feed(state(CALL, "ended", 3.0, end_reason="hangup"))
    assert headers(text) == [f"call {CALL}  inbound  +15551230000 → +15557650000  (context office)"]
    assert tracker.feed(ev("messaging.receive", 4.0, message_id="m1", message_state="received")) == "", "in grace"
    text = tracker.feed(ev("messaging.receive", 7.5, message_id="m2", message_state="received"))
    assert headers(text) == [f"call {OTHER}", "message m1", "message m2"]
    assert tracker.held == 0


def test_only_the_most_recently_written_ids_are_remembered_for_late_events() -> None:
    tracker = CallTracker(style=PLAIN, max_open=5)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(1_100)]
    for n, call_id in enumerate(ids):
        tracker.feed(state(call_id, "created", float(n)))
        assert headers(tracker.feed(state(call_id, "ended", n + 0.5))) == [f"call {call_id}"]
    late = [ev("calling.call.play", 2_000.0, call_id=call_id, state="playing") for call_id in (ids[0], ids[-1])]
    text = "".join(run(tracker, late))
    assert headers(text) == [
        f"call {ids[0]}  ⚠ no end state",
        f"call {ids[-1]}  ⚠ out of order  ⚠ continued: earlier events were written above",
    ], "the oldest of more than 1,024 written ids is forgotten; the latest is not"


def test_a_type_filter_chooses_the_calls_shown_and_their_lifecycle_is_judged_on_every_event() -> None:
    played = [
        state(CALL, "created", 0.0),
        ev("calling.call.play", 1.0, call_id=CALL, control_id="p1", state="playing"),
        state(CALL, "ended", 2.0, end_reason="hangup"),
    ]
    silent = [state(OTHER, "created", 3.0), state(OTHER, "ended", 4.0)]
    tracker = CallTracker(style=PLAIN, accept=lambda p: p["event_type"] == "calling.call.play")
    text = "".join(run(tracker, [*played, *silent]))
    assert headers(text) == [f"call {CALL}"], "no ⚠ no end state: its state events count, though not chosen"
    assert [line.split()[1:3] for line in blocks(text)[0].splitlines()[1:]] == [
        ["state", "created"],
        ["play", "playing"],
        ["state", "ended"],
    ]


def test_relay_calls_with_a_type_filter_flags_no_call_for_the_events_it_filtered_out(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b"".join(json.dumps(p).encode() + b"\n" for p in _demo(3_000)))
    result = relay("calls", str(path), "--type", "calling.call.play", "--color", "never")
    assert result.returncode == 0, result.stderr
    shown = blocks(result.stdout)
    assert shown and all("play " in block for block in shown)
    everything = blocks(relay("calls", str(path), "--color", "never").stdout)
    assert set(shown) <= set(everything), "each call shown as it is without the filter"


def test_ids_of_200_kb_do_not_grow_memory_per_call_held() -> None:
    tracker = CallTracker(style=PLAIN)
    huge = [f"{n:04d}" + "x" * 200_000 for n in range(50)]
    pieces: list[str] = []
    for n, call_id in enumerate(huge):
        pieces.append(tracker.feed(state(call_id, "created", float(n), tag=call_id + "t")))
        pieces.append(tracker.feed(ev("calling.call.play", n + 0.1, call_id=call_id, state="playing")))
    held = [key for key in tracker._calls] + [key for key in tracker._tags]
    assert len(held) == 100 and max(map(len, held)) < 100, "held as a head and a digest, not 200 KB each"
    pieces.append(tracker.finish())
    heads = headers("".join(pieces))
    assert len(heads) == 50 and all(len(head) < 200 for head in heads)
    assert heads[0].startswith("call 0000xxxx") and "…" in heads[0], "events of one long id stay in one block"


def test_a_description_of_200_kb_is_cut_when_it_is_held() -> None:
    tracker = CallTracker(style=PLAIN)
    tracker.feed(state(CALL, "created", 0.0))
    tracker.feed(ev("calling.call.play", 1.0, call_id=CALL, state="p" * 200_000))
    text = tracker.feed(state(CALL, "ended", 2.0))
    play = blocks(text)[0].splitlines()[2]
    assert len(play) < 1_100 and play.endswith("…")


# -- the phrase table, shared with the pretty line ------------------------------------------------------


def lines_of(payloads: Iterable[dict[str, Any]]) -> list[str]:
    tracker = CallTracker(style=PLAIN)
    return "".join(run(tracker, payloads)).splitlines()


def test_nested_values_show_as_compact_json_as_on_the_pretty_line() -> None:
    out = lines_of([inbound(CALL), ev("calling.call.play", 1.0, call_id=CALL, state={"nested": [1, "two"]})])
    assert any(line.endswith('play        {"nested":[1,"two"]}') for line in out), out


def test_a_sip_device_names_the_call_by_its_sip_from_when_from_number_is_empty() -> None:
    sip = {"type": "sip", "params": {"from_number": "", "from": "sip:alice@x", "to_number": "", "to": "sip:bob@y"}}
    out = lines_of([state(CALL, "created", 0.0, device=sip)])
    assert out[0].startswith(f"call {CALL}  sip:alice@x → sip:bob@y"), out[0]


def test_a_failed_connect_shows_its_reason_as_on_the_pretty_line() -> None:
    out = lines_of(
        [inbound(CALL), ev("calling.call.connect", 1.0, call_id=CALL, connect_state="failed", failed_reason="busy")]
    )
    assert any(line.endswith("connect     failed (busy)") for line in out), out


@settings(max_examples=200, deadline=None)
@given(
    call_state=st.sampled_from(["created", "ringing", "answered", "ending", "ended"]),
    reason=st.one_of(
        st.none(),
        st.just(""),
        st.text(max_size=8),
        st.integers(),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
)
def test_the_state_line_written_inline_is_the_phrase_tables(call_state: str, reason: Any) -> None:
    """The timeline writes a known state's phrase itself (a hot path): it must say what `phrases` says."""
    params = {"call_id": CALL, "call_state": call_state, "end_reason": reason}
    phrase = describer("calling.call.state", headline=False)(params)
    out = lines_of([ev("calling.call.state", 0.0, **params)])
    assert out[1] == f"  +0.000s  state       {phrase or '-'}", out
