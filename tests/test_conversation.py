"""The one pairing of a conversation's frames: requests with answers, events with ACKs, problems flagged."""

from __future__ import annotations

from typing import Any

import orjson

from relay_cli.pipeline.reader import read_frame
from relay_cli.pipeline.recording import frame_line
from relay_cli.protocol import APP_TO_RELAY, MAX_FRAME, RELAY_TO_APP, Kind
from relay_cli.views.conversation import ACK_WAIT, NO_ACK, PENDING, Conversation, Exchange

T0 = 1_700_000_000.0
CALL = "8d19821f-0000-4000-8000-000000000001"


def event(fid: Any, event_type: str = "calling.call.state", call: str = CALL) -> bytes:
    payload = {"event_type": event_type, "timestamp": T0, "params": {"call_id": call, "call_state": "answered"}}
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "method": "signalwire.event", "params": payload})


def request(fid: Any, method: str = "calling.answer", call: str = CALL) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "method": method, "params": {"call_id": call}})


def result(fid: Any, value: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "result": value if value is not None else {}})


def test_a_result_is_paired_with_its_request_and_says_how_long_it_took() -> None:
    conv = Conversation()
    asked = conv.see(APP_TO_RELAY, T0, 1, request("r1"))
    answer = conv.see(RELAY_TO_APP, T0 + 0.25, 1, result("r1", {"code": "200"}))
    assert asked.kind is Kind.REQUEST and asked.method == "calling.answer" and asked.call == CALL
    assert answer.kind is Kind.RESULT and answer.method == "calling.answer" and answer.call == CALL
    assert answer.took == 0.25 and answer.asked is asked.asked and answer.problem == ""
    assert len(conv) == 0


def test_the_same_ids_on_two_connections_or_both_ways_never_mix() -> None:
    conv = Conversation()
    conv.see(APP_TO_RELAY, T0, 1, request("x", "calling.play"))
    conv.see(APP_TO_RELAY, T0 + 1, 2, request("x", "calling.record"))
    conv.see(RELAY_TO_APP, T0 + 2, 1, request("x", "signalwire.ping"))
    on_two = conv.see(RELAY_TO_APP, T0 + 3, 2, result("x"))
    on_one = conv.see(RELAY_TO_APP, T0 + 4, 1, result("x"))
    pong = conv.see(APP_TO_RELAY, T0 + 5, 1, result("x"))
    assert (on_two.method, on_two.took) == ("calling.record", 2.0)
    assert (on_one.method, on_one.took) == ("calling.play", 4.0)
    assert (pong.method, pong.took) == ("signalwire.ping", 3.0)


def test_an_answer_with_no_request_is_unpaired() -> None:
    conv = Conversation()
    ex = conv.see(RELAY_TO_APP, T0, 1, result("nobody-asked", {"code": "200"}))
    assert ex.kind is Kind.RESULT and ex.method == "" and ex.took is None and ex.asked is None
    error = conv.see(RELAY_TO_APP, T0, 1, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600}}')
    assert error.kind is Kind.ERROR and error.id is None and error.asked is None


def test_an_event_is_paired_with_its_ack_and_remembered_as_acked() -> None:
    conv = Conversation()
    ev = conv.see(RELAY_TO_APP, T0, 1, event("e1"))
    assert ev.kind is Kind.EVENT and ev.method == "calling.call.state" and ev.call == CALL
    assert ev.asked is not None and not ev.asked.acked
    ack = conv.see(APP_TO_RELAY, T0 + 0.0004, 1, result("e1"))
    assert ack.asked is ev.asked and ack.asked.acked
    assert ack.method == "calling.call.state" and ack.took is not None and abs(ack.took - 0.0004) < 1e-6
    assert conv.overdue(T0 + 60) == []


def test_an_event_without_an_ack_is_overdue_once_after_the_wait() -> None:
    conv = Conversation()
    conv.see(RELAY_TO_APP, T0, 1, event("e1"))
    conv.see(RELAY_TO_APP, T0 + 1, 1, event("e2"))
    assert conv.overdue(T0 + ACK_WAIT - 0.01) == []
    (late,) = conv.overdue(T0 + ACK_WAIT)
    assert (late.id, late.connection, late.direction, late.kind) == ("e1", 1, RELAY_TO_APP, Kind.EVENT)
    assert late.problem == "no ACK in 5 s" and late.method == "calling.call.state"
    assert conv.overdue(T0 + ACK_WAIT) == []
    assert [ex.id for ex in conv.overdue(T0 + 100)] == ["e2"]
    assert conv.overdue(T0 + 200) == []


def test_a_late_ack_is_still_paired_with_its_latency() -> None:
    conv = Conversation()
    conv.see(RELAY_TO_APP, T0, 1, event("e1"))
    assert len(conv.overdue(T0 + 6)) == 1
    ack = conv.see(APP_TO_RELAY, T0 + 7, 1, result("e1"))
    assert ack.took == 7.0 and ack.method == "calling.call.state"


def test_a_closed_connection_names_its_unacked_events_and_forgets_the_rest() -> None:
    conv = Conversation()
    conv.see(RELAY_TO_APP, T0, 1, event("e1"))
    conv.see(RELAY_TO_APP, T0, 2, event("e1"))
    conv.see(APP_TO_RELAY, T0, 1, request("r1"))
    (ended,) = conv.closed(1)
    assert (ended.connection, ended.id, ended.problem) == (1, "e1", "no ACK (connection closed)")
    assert conv.closed(1) == []
    assert conv.see(RELAY_TO_APP, T0 + 1, 1, result("r1")).asked is None
    assert [ex.connection for ex in conv.overdue(T0 + 10)] == [2]


def test_pending_requests_are_bounded_when_the_peer_never_answers() -> None:
    conv = Conversation()
    for i in range(PENDING + 2_000):
        conv.see(APP_TO_RELAY, T0, 1, request(i))
    assert len(conv) == PENDING
    assert conv.see(RELAY_TO_APP, T0, 1, result(0)).asked is None
    assert conv.see(RELAY_TO_APP, T0, 1, result(PENDING + 1_999)).asked is not None


def test_events_never_acked_are_bounded_and_the_pushed_out_named_at_the_next_look() -> None:
    conv = Conversation(limit=100)
    for i in range(150):
        conv.see(RELAY_TO_APP, T0 + i / 1000, 1, event(f"e{i}"))
    assert len(conv) == 100 and len(conv._events) == 100 and len(conv._given_up) == 50
    early = conv.overdue(T0 + 0.2)  # before their wait: given up on, not overdue
    assert [ex.id for ex in early] == [f"e{i}" for i in range(50)]
    for i in range(150, 1_000):
        conv.see(RELAY_TO_APP, T0 + i / 1000, 1, event(f"e{i}"))
    assert len(conv._events) == 100 and len(conv._given_up) == 100  # memory stays flat
    assert len(conv.overdue(T0 + 100)) == 200


def test_an_id_sent_again_before_its_answer_pairs_with_the_newer() -> None:
    conv = Conversation()
    conv.see(RELAY_TO_APP, T0, 1, event("e1", "calling.call.state"))
    conv.see(RELAY_TO_APP, T0 + 1, 1, event("e1", "calling.call.play"))
    ack = conv.see(APP_TO_RELAY, T0 + 1.5, 1, result("e1"))
    assert ack.method == "calling.call.play" and ack.took == 0.5
    assert [ex.method for ex in conv.overdue(T0 + 10)] == ["calling.call.state"]


def test_frames_that_are_not_json_rpc_are_flagged_and_still_exchanges() -> None:
    conv = Conversation()
    cases = {
        b"hello": "not JSON",
        b"\xff\xfe{}": "not UTF-8",
        b"[1, 2]": "not a JSON-RPC object",
        b'{"jsonrpc": "2.0", "id": 1}': "neither a request nor an answer",
        b'{"jsonrpc": "2.0", "id": 1, "method": 7}': "method is not a string",
        b"[" * 2_000_000 + b"]" * 2_000_000: "too many arrays and objects to decode",
    }
    for raw, problem in cases.items():
        ex = conv.see(APP_TO_RELAY, T0, 1, raw)
        assert isinstance(ex, Exchange) and ex.kind is None and ex.problem == problem and ex.raw is raw
    binary = conv.see(RELAY_TO_APP, T0, 1, b'{"jsonrpc":"2.0","id":1,"result":{}}', text=False)
    assert binary.kind is None and binary.problem == "binary frame" and binary.frame is None


def test_a_frame_over_the_limit_is_flagged_without_being_decoded() -> None:
    big = b'{"jsonrpc":"2.0","id":"b","method":"calling.play","params":{"x":"' + b"a" * MAX_FRAME + b'"}}'
    ex = Conversation().see(APP_TO_RELAY, T0, 1, big)
    assert ex.problem == "over the 10 MiB frame limit" and ex.frame is None and ex.kind is None


def test_odd_ids_and_params_are_taken_as_they_come() -> None:
    conv = Conversation()
    listed = conv.see(APP_TO_RELAY, T0, 1, b'{"jsonrpc":"2.0","id":[1],"method":"calling.end","params":[]}')
    assert listed.kind is Kind.REQUEST and listed.id is None and listed.asked is None and listed.call == ""
    odd = conv.see(RELAY_TO_APP, T0, 1, b'{"jsonrpc":"2.0","id":"e","method":"signalwire.event","params":{"params":1}}')
    assert odd.kind is Kind.EVENT and odd.method == "" and odd.call == ""
    assert conv.see(APP_TO_RELAY, T0 - 1, 1, result("e")).took == 0.0  # a clock that stepped back


def test_a_recorded_frame_cut_at_the_frame_limit_is_flagged_as_such() -> None:
    raw = b'{"jsonrpc":"2.0","id":"r","method":"calling.play","params":{"x":"' + b"y" * MAX_FRAME + b'"}}'
    back = read_frame(orjson.loads(frame_line(APP_TO_RELAY, 1.0, 1, raw)))
    assert back is not None
    seen = Conversation().see(*back)
    assert seen.kind is None and seen.problem == "over the 10 MiB frame limit (recorded: its first 64 KiB)"
    assert len(seen.raw) == 64 * 2**10


def test_an_event_never_acked_is_flagged_with_the_one_no_ack_phrase() -> None:
    conversation = Conversation()
    event = b'{"jsonrpc":"2.0","id":"e","method":"signalwire.event","params":{"event_type":"x"}}'
    conversation.see(RELAY_TO_APP, 1.0, 1, event)
    assert [ex.problem for ex in conversation.overdue(1.0 + ACK_WAIT)] == [NO_ACK] == ["no ACK in 5 s"]
