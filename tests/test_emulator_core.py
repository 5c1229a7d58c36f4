"""The emulator's session logic without a socket: frames in, frames out, clocks passed in."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from relay_cli.emulator.journal import Journal
from relay_cli.emulator.methods import METHODS, Request
from relay_cli.emulator.outbox import Outbox
from relay_cli.emulator.sessions import EmulatorCore, Peer, Session
from relay_cli.protocol import (
    APP_TO_RELAY,
    AUTH_FAILED,
    BAD_AUTH_STATE,
    CALL_PASS,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    RELAY_TO_APP,
    FrameRecord,
    Kind,
    ack,
    connect_params,
    request,
    result,
)

Frame = dict[str, Any]


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Wire(Peer):
    """A connection that keeps what the core writes to it on its own."""

    def __init__(self, name: str = "client:1") -> None:
        super().__init__(name)
        self.written: list[Frame] = []

    def write(self, frames: Any) -> None:
        self.written += [orjson.loads(f) for f in frames]


def core(clock: Clock | None = None, **options: Any) -> EmulatorCore:
    options.setdefault("mode", "app")
    return EmulatorCore(clock=clock or Clock(), wall=lambda: 1_700_000_000.0, **options)


def connect(emu: EmulatorCore, peer: Peer, **params: Any) -> tuple[list[Frame], Session | None]:
    params.setdefault("project", "proj")
    params.setdefault("token", "secret-token")
    frame = request("signalwire.connect", connect_params(**params), "c-1")
    decoded, kind = emu.decode(peer, orjson.dumps(frame))
    assert kind is Kind.CONNECT and decoded is not None
    outcome = emu.connect(peer, decoded)
    return [orjson.loads(r) for r in outcome.replies], outcome.session


def send(emu: EmulatorCore, peer: Peer, frame: Frame) -> Frame | None:
    reply = emu.receive(peer, orjson.dumps(frame))
    return None if reply is None else orjson.loads(reply)


def test_connect_creates_a_session_and_journals_the_request_and_both_replies() -> None:
    emu, peer = core(), Wire()
    replies, session = connect(emu, peer, contexts=["office"])
    assert session is not None and session.contexts == ["office"]
    assert replies[0]["id"] == "c-1" and replies[0]["result"]["protocol"] == session.protocol
    assert replies[1]["params"]["event_type"] == "signalwire.authorization.state"
    records = list(emu.journal.records())
    assert [(r.direction, r.kind) for r in records] == [
        (APP_TO_RELAY, Kind.CONNECT),
        (RELAY_TO_APP, Kind.RESULT),
        (RELAY_TO_APP, Kind.EVENT),
    ]
    assert all(r.connection == peer.id and r.time == 1_700_000_000.0 for r in records)
    assert records[1].value == replies[0] and orjson.loads(records[1].raw) == replies[0]
    assert [s for s, _ in emu.journal.entries()] == [session.sessionid] * 3  # the request too: it opened it


def test_refused_credentials_get_32002_and_no_session() -> None:
    emu = core(project="proj", token="secret-token")
    replies, session = connect(emu, Wire(), token="wrong-token")
    assert session is None
    assert replies[0]["error"]["code"] == AUTH_FAILED
    assert emu.stats.auth_failures == 1 and emu.sessions == {}


def test_resume_redelivers_what_was_not_acked_and_an_ack_clears_it() -> None:
    emu, first = core(), Wire()
    replies, session = connect(emu, first)
    assert session is not None
    blob = replies[1]["params"]["params"]["authorization_state"]
    _, frames = emu.push({"event_type": "calling.call.state", "params": {"call_id": "c"}})
    pushed_id = orjson.loads(frames[0][1])["id"]
    emu.detach(first)
    assert session.conn is None

    second = Wire("client:2")
    bad, none = connect(emu, second, protocol=session.protocol, authorization_state="not-the-state")
    assert none is None and bad[0]["error"]["code"] == BAD_AUTH_STATE
    again, resumed = connect(emu, second, protocol=session.protocol, authorization_state=blob)
    assert resumed is session and again[0]["result"]["session_restored"] is True
    assert [orjson.loads(d)["id"] for d in emu.backlog(session)] == [pushed_id]
    assert send(emu, second, ack(pushed_id)) is None
    assert session.unacked == {} and emu.stats.events_acked == 1


def test_a_resume_from_a_new_socket_says_which_old_one_to_drop() -> None:
    emu, old, new = core(), Wire("old:1"), Wire("new:1")
    replies, session = connect(emu, old)
    assert session is not None
    blob = replies[1]["params"]["params"]["authorization_state"]
    frame = request(
        "signalwire.connect",
        connect_params(project="proj", token="secret-token", protocol=session.protocol, authorization_state=blob),
    )
    outcome = emu.connect(new, frame)
    assert outcome.evict is old and old.session is None and session.conn is new


def test_the_method_table_answers_ping_and_contexts_and_refuses_unknown_methods() -> None:
    emu, peer = core(), Wire()
    connect(emu, peer)
    assert send(emu, peer, request("signalwire.ping", {"timestamp": 1.5}, "p-1")) == result("p-1", {"timestamp": 1.5})
    reply = send(emu, peer, request("signalwire.receive", {"contexts": ["a", "b"]}, "r-1"))
    assert reply is not None and reply["result"]["code"] == "200"
    assert peer.session is not None and peer.session.contexts == ["a", "b"]
    reply = send(emu, peer, request("calling.no_such_verb", {}, "x-1"))
    assert reply is not None and reply["error"]["code"] == METHOD_NOT_FOUND


def test_a_method_plugs_in_as_one_more_table_entry_and_may_schedule_events_on_the_outbox() -> None:
    clock = Clock()

    def answer(emu: EmulatorCore, req: Request) -> Frame:
        call_id = req.params["call_id"]
        emu.schedule(req.session, 0.5, {"event_type": "calling.call.state", "params": {"call_id": call_id}})
        return result(req.id, {"code": "200", "message": "Answered", "call_id": call_id})

    emu = core(clock, methods={**METHODS, "calling.answer": answer})
    peer = Wire()
    connect(emu, peer)
    reply = send(emu, peer, request("calling.answer", {"call_id": "c-9"}, "a-1"))
    assert reply == result("a-1", {"code": "200", "message": "Answered", "call_id": "c-9"})
    assert emu.next_due() == 100.5
    emu.tick(100.4)
    assert peer.written == []
    emu.tick(100.5)
    assert [f["params"]["params"] for f in peer.written] == [{"call_id": "c-9"}]
    assert emu.next_due() is None
    assert peer.session is not None and peer.written[0]["id"] in peer.session.unacked


def test_a_handler_that_raises_costs_the_client_one_request_not_its_session() -> None:
    lines: list[str] = []

    def broken(emu: EmulatorCore, req: Request) -> Frame:
        raise RuntimeError("bug")

    emu = core(methods={**METHODS, "calling.broken": broken}, log=lines.append)
    peer = Wire()
    connect(emu, peer)
    reply = send(emu, peer, request("calling.broken", {}, "b-1"))
    assert reply is not None and reply["error"] == {"code": INTERNAL_ERROR, "message": "Internal error"}
    assert any("internal error handling a frame" in line for line in lines)
    assert send(emu, peer, request("signalwire.ping", {"timestamp": 2}, "p-2")) == result("p-2", {"timestamp": 2})


def test_events_scheduled_for_a_detached_session_wait_for_its_resume() -> None:
    clock = Clock()
    emu, peer = core(clock), Wire()
    _, session = connect(emu, peer)
    assert session is not None
    emu.detach(peer)
    emu.schedule(session, 7.3, {"event_type": "calling.call.play", "params": {"state": "playing"}})
    clock.now += 7.3
    emu.tick()
    assert peer.written == []
    assert [orjson.loads(d)["params"]["event_type"] for d in emu.backlog(session)] == ["calling.call.play"]


def test_an_offered_call_nobody_answers_rings_out_to_its_holder_on_the_clock_passed_in() -> None:
    clock = Clock()
    emu, peer = core(clock, ring_timeout=30.0), Wire()
    connect(emu, peer, contexts=["office"])
    emu.offer_call("office", "call-1", "+15550000001", "+15550000002")
    assert [f["params"]["event_type"] for f in peer.written] == ["calling.call.receive"]
    assert emu.next_due() == 130.0
    emu.tick(129.9)
    assert len(peer.written) == 1
    emu.tick(130.0)
    states = [(f["params"]["params"]["call_state"], f["params"]["params"]["end_reason"]) for f in peer.written[1:]]
    assert states == [("ending", "noAnswer"), ("ended", "noAnswer")]


def test_calling_pass_offers_the_call_to_the_next_session_on_its_context() -> None:
    emu, a, b = core(), Wire("a:1"), Wire("b:1")
    connect(emu, a, contexts=["office"])
    connect(emu, b, contexts=["office"])
    emu.offer_call("office", "call-1", "+15550000001", "+15550000002")
    holder, other = (a, b) if a.written else (b, a)
    reply = send(emu, holder, request(CALL_PASS, {"call_id": "call-1", "node_id": emu.node_id}, "x-1"))
    assert reply is not None and reply["result"]["code"] == "200"
    assert [f["params"]["params"]["call_id"] for f in other.written] == ["call-1"]
    assert emu.stats.calls_passed == 1 and emu.stats.calls_offered == 2


def test_frames_that_are_not_json_rpc_are_journaled_with_no_kind() -> None:
    emu, peer = core(), Wire()
    connect(emu, peer)
    assert emu.receive(peer, b"not json") is None
    assert emu.receive(peer, b'{"jsonrpc":"2.0"}') is None
    last = list(emu.journal.records())[-2:]
    assert [(r.kind, r.raw) for r in last] == [(None, b"not json"), (None, b'{"jsonrpc":"2.0"}')]
    assert last[1].value == {"jsonrpc": "2.0"}


def test_drawn_demo_events_are_tracked_and_journaled_as_one_burst() -> None:
    emu, peer = core(mode="demo", seed=1, rate=0), Wire()
    _, session = connect(emu, peer, contexts=["office"])
    assert session is not None
    batch, drawn = emu.draw(session, 10)
    assert drawn == 10 and len(batch) == 10 and len(session.unacked) == 10
    sent = [r for r in emu.journal.records() if r.kind is Kind.EVENT][1:]  # after authorization.state
    assert [r.raw for r in sent] == batch
    assert [r.value for r in sent] == [orjson.loads(b) for b in batch]


def test_the_journal_is_bounded_keeping_the_newest_and_counts_all() -> None:
    journal = Journal(size=3)
    for i in range(5):
        journal.add(APP_TO_RELAY, float(i), "c", "s", Kind.RESULT, {"id": i}, b"{}")
    assert len(journal) == 3 and journal.total == 5
    assert [r.time for r in journal.records()] == [2.0, 3.0, 4.0]
    journal.clear()
    assert len(journal) == 0 and journal.total == 0
    with pytest.raises(ValueError, match="size must not be negative"):
        Journal(size=-1)


def test_a_redelivered_frame_kept_as_bytes_is_decoded_when_read() -> None:
    journal = Journal()
    journal.add(RELAY_TO_APP, 1.0, "c", "s", Kind.EVENT, None, b'{"id":"e-1"}')
    assert next(journal.records()).value == {"id": "e-1"}


def test_a_frame_record_is_frozen() -> None:
    record = FrameRecord(APP_TO_RELAY, 1.0, "c", Kind.RESULT, {}, b"{}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.time = 2.0  # type: ignore[misc]


def test_the_outbox_gives_what_is_due_earliest_first_and_ties_in_the_order_put() -> None:
    box: Outbox[str] = Outbox()
    assert box.next_due() is None and box.pop_due(1e9) == []
    for due, item in ((5.0, "c"), (1.0, "a"), (5.0, "d"), (2.0, "b")):
        box.put(due, item)
    assert box.next_due() == 1.0 and len(box) == 4
    assert box.pop_due(4.9) == ["a", "b"]
    assert box.pop_due(5.0) == ["c", "d"]
    assert len(box) == 0


def test_the_outbox_in_simulated_time_always_gives_the_earliest_whatever_the_clock() -> None:
    box: Outbox[str] = Outbox()
    with pytest.raises(IndexError):
        box.pop_first()
    for due, item in ((3.0, "c"), (1.0, "a")):
        box.put(due, item)
    assert box.pop_first() == (1.0, "a")
    # what is put is taken at once when it is the earliest; a tie goes to what was put first
    assert box.put_pop_first(2.0, "b")[::2] == (2.0, "b")
    assert box.put_pop_first(3.0, "d")[::2] == (3.0, "c")
    assert box.put_pop_first(9.0, "e")[::2] == (3.0, "d")
    assert len(box) == 1 and box.next_due() == 9.0
