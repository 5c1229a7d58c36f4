"""The control plane over real HTTP on loopback: every route, every error path, and a server still fine after.

An in-process :class:`Emulator` with ``control_port=0``; requests with ``http.client`` (in a thread, so the
emulator's loop keeps running), sessions as raw WebSocket clients speaking the protocol.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from controlplane import Reply, acall
from websockets.asyncio.client import ClientConnection, connect

from relay_cli.emulator import Emulator
from relay_cli.protocol import connect_params, request

T = TypeVar("T")


def run(main: Callable[[Emulator], Coroutine[Any, Any, T]], **options: Any) -> T:
    async def wrapper() -> T:
        options.setdefault("mode", "scripted")
        async with Emulator(control_port=0, ping_interval=0, **options) as emu:
            async with asyncio.timeout(20):
                return await main(emu)

    return asyncio.run(wrapper())


async def ws_session(emu: Emulator, contexts: list[str] | None = None) -> tuple[ClientConnection, str]:
    """A connected client and its ``sessionid``."""
    ws = await connect(emu.url, ping_interval=None)
    params = connect_params(project="proj", token="secret-token", contexts=contexts or ["default"])
    await ws.send(orjson.dumps(request("signalwire.connect", params, "c1")).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("id") == "c1":
            return ws, frame["result"]["sessionid"]


async def next_event(ws: ClientConnection, event_type: str) -> dict[str, Any]:
    """The next ``signalwire.event`` of that type (ACKed, as the SDK does); others are ACKed and skipped."""
    async with asyncio.timeout(10):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("method") == "signalwire.event":
                await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}).decode())
                if frame["params"]["event_type"] == event_type:
                    return dict(frame["params"])


def expect(reply: Reply, status: int, error: str | None = None) -> Any:
    assert reply.status == status, reply
    if error is not None:
        assert reply.json == {"error": error}, reply
    return reply.json


async def raw_http(emu: Emulator, data: bytes) -> bytes:
    """Send bytes on a fresh connection and read what comes back until the server closes it."""
    port = int(emu.control_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()  # done sending: the server may read to the end of what was sent
    try:
        return await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()


# -- mock_relay: state ------------------------------------------------------------------------------------------


def test_health_reports_the_ws_port_and_counts_and_the_core_knows_the_control_url() -> None:
    async def main(emu: Emulator) -> None:
        assert emu.control_url.startswith("http://127.0.0.1:")
        assert emu.core.control_url == emu.control_url
        body = expect(await acall(emu.control_url, "GET", "/__mock__/health"), 200)
        assert body["status"] == "ok"
        assert body["ws_port"] == int(emu.url.rsplit(":", 1)[1])
        assert body["schemas_loaded"] == len(emu.core.methods) > 0
        assert isinstance(body["journal_entries"], int)
        assert body["mode"] == "scripted"

    run(main)


def test_no_control_plane_unless_asked() -> None:
    async def main() -> None:
        async with Emulator(ping_interval=0) as emu:
            assert emu.control_url == ""
            assert emu.core.control_url == ""

    asyncio.run(main())


def test_sessions_lists_each_connected_session() -> None:
    async def main(emu: Emulator) -> None:
        ws, sid = await ws_session(emu)
        sessions = expect(await acall(emu.control_url, "GET", "/__mock__/sessions"), 200)["sessions"]
        assert len(sessions) == 1
        entry = sessions[0]
        assert entry["id"] == sid
        assert entry["protocol_string"].startswith("signalwire_")
        assert entry["peer_addr"].startswith("127.0.0.1:")
        assert set(entry) == {"id", "connection_id", "connected_at", "peer_addr", "protocol_string"}
        await ws.close()

    run(main)


def test_journal_has_every_frame_both_ways_scoped_by_session_and_reset_empties_it() -> None:
    async def main(emu: Emulator) -> None:
        a, sid_a = await ws_session(emu)
        b, sid_b = await ws_session(emu)
        await a.send(orjson.dumps(request("signalwire.ping", {}, "p1")).decode())
        async with asyncio.timeout(10):
            while orjson.loads(await a.recv()).get("id") != "p1":
                pass
        journal = expect(await acall(emu.control_url, "GET", f"/__mock__/journal?session_id={sid_a}"), 200)
        assert {e["session_id"] for e in journal} == {sid_a}
        first = journal[0]
        assert set(first) == {"timestamp", "direction", "method", "request_id", "frame", "connection_id", "session_id"}
        assert (first["direction"], first["method"], first["request_id"]) == ("recv", "signalwire.connect", "c1")
        assert first["frame"]["params"]["authentication"] == "[redacted]"
        answers = [e for e in journal if e["request_id"] == "c1" and e["direction"] == "send"]
        assert answers[0]["method"] == "signalwire.connect"  # a response names the request it answers
        assert [e["method"] for e in journal if e["request_id"] == "p1"] == ["signalwire.ping", "signalwire.ping"]
        everything = expect(await acall(emu.control_url, "GET", "/__mock__/journal"), 200)
        assert {e["session_id"] for e in everything} == {sid_a, sid_b}
        assert expect(await acall(emu.control_url, "POST", "/__mock__/journal/reset"), 200) == {"status": "ok"}
        assert expect(await acall(emu.control_url, "GET", "/__mock__/journal"), 200) == []
        await a.close()
        await b.close()

    run(main)


# -- mock_relay: push and inbound_call ------------------------------------------------------------------------------


def test_push_sends_the_frame_verbatim_to_one_session_or_all() -> None:
    async def main(emu: Emulator) -> None:
        a, sid_a = await ws_session(emu)
        b, _ = await ws_session(emu)
        frame = {"jsonrpc": "2.0", "id": "push-1", "method": "signalwire.event", "params": {"event_type": "x.y"}}
        body = expect(await acall(emu.control_url, "POST", f"/__mock__/push?session_id={sid_a}", {"frame": frame}), 200)
        assert body == {"sent_to": [sid_a], "count": 1}
        got = await next_frame(a, "push-1")
        assert got == frame
        body = expect(await acall(emu.control_url, "POST", "/__mock__/push", {"frame": {**frame, "id": "push-2"}}), 200)
        assert body["count"] == 2
        assert (await next_frame(b, "push-2"))["id"] == "push-2"
        journal = expect(await acall(emu.control_url, "GET", "/__mock__/journal"), 200)
        assert any(e["request_id"] == "push-1" and e["direction"] == "send" for e in journal)
        await a.close()
        await b.close()

    run(main)


async def next_frame(ws: ClientConnection, frame_id: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("id") == frame_id:
                return dict(frame)


def test_push_errors() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        frame = {"frame": {"jsonrpc": "2.0", "method": "x"}}
        reply = await acall(url, "POST", "/__mock__/push?session_id=nope", frame)
        assert (reply.status, reply.json) == (404, {"sent_to": [], "count": 0, "error": "no such session"})
        expect(await acall(url, "POST", "/__mock__/push", raw=b"{not json"), 400)
        assert (
            (await acall(url, "POST", "/__mock__/push", raw=b"{not json"))
            .json["error"]
            .startswith("body is not JSON: ")
        )
        expect(await acall(url, "POST", "/__mock__/push"), 400, "body: expected JSON, got an empty body")
        expect(await acall(url, "POST", "/__mock__/push", [1]), 400, "body: must be a JSON object, not an array")
        expect(
            await acall(url, "POST", "/__mock__/push", {"frame": "x"}),
            400,
            "frame: must be an object (a whole JSON-RPC frame)",
        )
        expect(
            await acall(url, "POST", "/__mock__/push", {**frame, "session_id": 5}),
            400,
            "session_id: must be a non-empty string of at most 256 characters, not a number",
        )

    run(main)


def test_inbound_call_emits_receive_then_states_and_says_what_it_did() -> None:
    async def main(emu: Emulator) -> None:
        ws, sid = await ws_session(emu)
        body = {
            "call_id": "call-1",
            "from_number": "+15551110000",
            "to_number": "+15552220000",
            "auto_states": ["created", "ringing"],
            "delay_ms": 20,
        }
        reply = expect(await acall(emu.control_url, "POST", "/__mock__/inbound_call", body), 200)
        assert reply == {"sent_to": [sid], "count": 1, "call_id": "call-1", "states_emitted": ["created", "ringing"]}
        receive = await next_event(ws, "calling.call.receive")
        assert receive["params"] == {
            "call_id": "call-1",
            "node_id": emu.core.node_id,
            "tag": "",
            "call_state": "created",
            "direction": "inbound",
            "device": {"type": "phone", "params": {"from_number": "+15551110000", "to_number": "+15552220000"}},
            "context": "default",
        }
        state = await next_event(ws, "calling.call.state")
        assert state["params"]["call_state"] == "ringing"
        await ws.close()

    run(main)


def test_inbound_call_errors() -> None:
    async def main(emu: Emulator) -> None:
        url, path = emu.control_url, "/__mock__/inbound_call"
        numbers = {"from_number": "+1555", "to_number": "+1666"}
        expect(await acall(url, "POST", path, {"to_number": "+1"}), 400, "from_number: required (a non-empty string)")
        expect(
            await acall(url, "POST", path, {**numbers, "auto_states": "created"}),
            400,
            "auto_states: must be a non-empty array of call states",
        )
        expect(
            await acall(url, "POST", path, {**numbers, "delay_ms": -1}),
            400,
            "delay_ms: must be a number of milliseconds from 0 to 600000",
        )
        reply = await acall(url, "POST", path, {**numbers, "session_id": "nope"})
        assert (reply.status, reply.json) == (404, {"sent_to": [], "count": 0, "error": "no such session"})
        reply = expect(await acall(url, "POST", path, numbers), 200)
        assert reply["count"] == 0  # nobody connected: nothing sent, no error
        assert reply["call_id"]

    run(main)


# -- mock_relay: scenarios ---------------------------------------------------------------------------------------------


def test_scenarios_queue_list_and_reset() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        events = [{"emit": {"state": "playing"}}, {"emit": {"state": "finished"}, "delay_ms": 5}]
        reply = expect(await acall(url, "POST", "/__mock__/scenarios/calling.play?session_id=s1", events), 200)
        assert reply == {"status": "ok", "method": "calling.play", "events_queued": 2}
        dial = {"tag": "t1", "winner_call_id": "w1"}
        assert expect(await acall(url, "POST", "/__mock__/scenarios/dial", dial), 200) == {"status": "ok", "tag": "t1"}
        listed = expect(await acall(url, "GET", "/__mock__/scenarios"), 200)
        assert listed["methods"]["calling.play"][0]["session_id"] == "s1"
        assert [e["emit"] for e in listed["methods"]["calling.play"][0]["events"]] == [
            {"state": "playing"},
            {"state": "finished"},
        ]
        assert listed["dials"][0]["tag"] == "t1"
        assert listed["dials"][0]["states"] == ["created", "ringing", "answered"]
        assert expect(await acall(url, "POST", "/__mock__/scenarios/reset"), 200) == {"status": "ok"}
        assert expect(await acall(url, "GET", "/__mock__/scenarios"), 200) == {"methods": {}, "dials": []}

    run(main)


def test_a_method_scenario_fills_in_call_id_and_control_id_after_the_result() -> None:
    async def main(emu: Emulator) -> None:
        ws, _ = await ws_session(emu)
        events = [{"emit": {"state": "playing"}, "delay_ms": 0}, {"emit": {"state": "finished"}}]
        expect(await acall(emu.control_url, "POST", "/__mock__/scenarios/calling.play", events), 200)
        params = {"node_id": "n", "call_id": "c", "control_id": "k", "play": [{"type": "silence"}]}
        await ws.send(orjson.dumps(request("calling.play", params, "r1")).decode())
        playing = await next_event(ws, "calling.call.play")
        assert playing["params"] == {"node_id": "n", "call_id": "c", "control_id": "k", "state": "playing"}
        assert (await next_event(ws, "calling.call.play"))["params"]["state"] == "finished"
        assert expect(await acall(emu.control_url, "GET", "/__mock__/scenarios"), 200)["methods"] == {}
        await ws.close()

    run(main)


def test_scenario_errors() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        expect(
            await acall(url, "POST", "/__mock__/scenarios/calling.play", {"emit": {}}),
            400,
            "body: must be an array of {emit, event_type?, delay_ms?} objects",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenarios/calling.play", [{"emit": 1}]),
            400,
            "[0].emit: must be an object (the event's params)",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenarios/calling.play", [{"emit": {}, "delay_ms": "1"}]),
            400,
            "[0].delay_ms: must be a number of milliseconds from 0 to 600000",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenarios/calling.play", [{"emit": {}, "colour": 1}]),
            400,
            "[0]: unknown field 'colour' (fields: emit, event_type, delay_ms)",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenarios/signalwire.receive", [{"emit": {}}]),
            400,
            "[0].event_type: required, 'signalwire.receive' has no default event type",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenarios/dial", {"winner_call_id": "w"}),
            400,
            "tag: must be a non-empty string (the tag of the calling.dial to answer)",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenarios/dial", {"tag": "t", "losers": [{"states": 3}]}),
            400,
            "losers[0].states: must be an array of at most 100 state names",
        )
        expect(await acall(url, "GET", "/__mock__/scenarios/calling.play"), 405)

    run(main)


def test_scenario_play_validates_every_step_first_and_times_out_with_its_shape() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        expect(
            await acall(url, "POST", "/__mock__/scenario_play", {"sleep_ms": 1}),
            400,
            "body: must be an array of steps ({sleep_ms} | {push} | {expect_recv})",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenario_play", [{"sleep_ms": 1}, {"jump": 1}]),
            400,
            "[1]: must be one of {sleep_ms}, {push: {frame}}, {expect_recv: {method}}",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenario_play", [{"expect_recv": {"timeout_ms": 5}}]),
            400,
            "[0].expect_recv.method: required (a non-empty string)",
        )
        expect(
            await acall(url, "POST", "/__mock__/scenario_play", [{"push": {"frame": []}}]),
            400,
            "[0].push.frame: must be an object (a whole JSON-RPC frame)",
        )
        steps = [{"sleep_ms": 1}, {"expect_recv": {"method": "calling.answer", "timeout_ms": 50}}]
        reply = expect(await acall(url, "POST", "/__mock__/scenario_play", steps), 200)
        assert reply == {"status": "timeout", "at_step": 1, "expected_method": "calling.answer", "steps_completed": 1}
        push = [{"push": {"frame": {"jsonrpc": "2.0"}, "session_id": "nope"}}]
        reply = await acall(url, "POST", "/__mock__/scenario_play", push)
        assert (reply.status, reply.json) == (
            404,
            {"status": "error", "at_step": 0, "error": "no such session", "steps_completed": 0},
        )
        assert emu.journal.observers == []  # the watch is gone with the play

    run(main)


def test_scenario_play_waits_for_the_expected_request_without_polling() -> None:
    async def main(emu: Emulator) -> None:
        ws, sid = await ws_session(emu)
        steps = [
            {"push": {"frame": {"jsonrpc": "2.0", "id": "q", "method": "signalwire.ping", "params": {}}}},
            {"expect_recv": {"method": "calling.answer", "session_id": sid}},
            {"sleep_ms": 5},
        ]
        play = asyncio.ensure_future(acall(emu.control_url, "POST", "/__mock__/scenario_play", steps))
        await next_frame(ws, "q")
        await ws.send(orjson.dumps(request("calling.answer", {"node_id": "n", "call_id": "c"}, "a1")).decode())
        reply = await play
        assert (reply.status, reply.json) == (200, {"status": "completed", "steps": 3})
        await ws.close()

    run(main)


# -- the project's own routes ----------------------------------------------------------------------------------------


def test_far_ends_get_replace_and_merge() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        rules = expect(await acall(url, "GET", "/relay/far_ends"), 200)
        assert rules["default"]["answer"] == "answer"
        assert rules["numbers"] == {}
        busy = {"numbers": {"+15550001111": {"answer": "busy"}}}
        rules = expect(await acall(url, "PUT", "/relay/far_ends", busy), 200)
        assert rules["numbers"]["+15550001111"]["answer"] == "busy"
        rules = expect(await acall(url, "POST", "/relay/far_ends", {"numbers": {"+1666": {"message": "failed"}}}), 200)
        assert set(rules["numbers"]) == {"+15550001111", "+1666"}
        assert emu.core.far_ends.for_number("+1666").message == "failed"
        rules = expect(await acall(url, "PUT", "/relay/far_ends", {}), 200)
        assert rules["numbers"] == {}
        expect(
            await acall(url, "PUT", "/relay/far_ends", {"default": {"answer": "maybe"}}),
            400,
            "default.answer: must be one of answer, busy, no-answer, decline",
        )
        expect(
            await acall(url, "POST", "/relay/far_ends", {"people": {}}),
            400,
            "far ends: unknown key 'people' (keys: default, numbers)",
        )
        expect(await acall(url, "DELETE", "/relay/far_ends"), 405)

    run(main)


def test_messages_route_starts_an_inbound_message_and_reports_it() -> None:
    async def main(emu: Emulator) -> None:
        ws, sid = await ws_session(emu, ["office"])
        body = {"to_number": "+1555", "from_number": "+1666", "body": "hi", "context": "office"}
        created = expect(await acall(emu.control_url, "POST", "/relay/messages", body), 201)
        event = await next_event(ws, "messaging.receive")
        assert event["params"]["message_id"] == created["message_id"]
        assert event["params"]["body"] == "hi"
        status = expect(await acall(emu.control_url, "GET", f"/relay/messages/{created['message_id']}"), 200)
        assert status["state"] == "received"
        assert status["session_id"] == sid
        listed = expect(await acall(emu.control_url, "GET", "/relay/messages"), 200)["messages"]
        assert [m["message_id"] for m in listed] == [created["message_id"]]
        await ws.close()

    run(main)


def test_messages_route_errors() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        expect(await acall(url, "GET", "/relay/messages/nope"), 404, "no such message: nope")
        expect(
            await acall(url, "POST", "/relay/messages", {"to_number": "+1", "from_number": "+2"}),
            400,
            "body: required (a non-empty string)",
        )
        expect(
            await acall(url, "POST", "/relay/messages", {"to_number": "+1", "from_number": "+2", "body": "x", "y": 1}),
            400,
            "body: unknown field 'y' (fields: to_number, from_number, body, media, context, session_id)",
        )
        body = {"to_number": "+1", "from_number": "+2", "body": "x", "session_id": "nope"}
        expect(await acall(url, "POST", "/relay/messages", body), 404, "no such session")

    run(main)


def test_calls_route_places_an_inbound_call_and_reports_it() -> None:
    async def main(emu: Emulator) -> None:
        ws, sid = await ws_session(emu)
        created = expect(await acall(emu.control_url, "POST", "/relay/calls", {"to_number": "+15550002222"}), 201)
        assert created["sent_to"] == [sid]
        receive = await next_event(ws, "calling.call.receive")
        assert receive["params"]["call_id"] == created["call_id"]
        status = expect(await acall(emu.control_url, "GET", f"/relay/calls/{created['call_id']}"), 200)
        assert status["direction"] == "inbound"
        listed = expect(await acall(emu.control_url, "GET", "/relay/calls"), 200)["calls"]
        assert created["call_id"] in [c["call_id"] for c in listed]
        await ws.close()

    run(main, mode="app")


def test_calls_route_errors() -> None:
    async def main(emu: Emulator) -> None:
        url = emu.control_url
        expect(await acall(url, "GET", "/relay/calls/nope"), 404, "no such call: nope")
        expect(await acall(url, "POST", "/relay/calls", {}), 400, "to_number: required (a non-empty string)")
        expect(
            await acall(url, "POST", "/relay/calls", {"to_number": "+1", "press": "xyz"}),
            400,
            "body.press: only digits 0-9, *, # and A-D can be pressed",
        )
        expect(
            await acall(url, "POST", "/relay/calls", {"to_number": "+1", "session_id": "nope"}),
            404,
            "no such session",
        )
        expect(await acall(url, "GET", "/relay/recordings/nope.wav"), 404, "no such recording: nope")

    run(main, mode="app")


def test_a_route_that_fails_inside_is_a_500_naming_the_exception_and_the_server_goes_on() -> None:
    async def main(emu: Emulator) -> None:
        def broken(**_: Any) -> str:
            raise RuntimeError("boom")

        emu.core.calls.start_inbound = broken  # type: ignore[method-assign]
        expect(
            await acall(emu.control_url, "POST", "/relay/calls", {"to_number": "+1"}),
            500,
            "internal error (RuntimeError) in POST /relay/calls",
        )
        expect(await acall(emu.control_url, "GET", "/__mock__/health"), 200)

    logs: list[str] = []
    run(main, log=logs.append)
    assert any("internal error in POST /relay/calls: RuntimeError('boom')" in line for line in logs)


# -- HTTP itself ---------------------------------------------------------------------------------------------


def test_unknown_route_is_404_and_wrong_method_405_with_allow() -> None:
    async def main(emu: Emulator) -> None:
        expect(await acall(emu.control_url, "GET", "/nope"), 404, "no such route: GET /nope")
        reply = await acall(emu.control_url, "POST", "/__mock__/health")
        expect(reply, 405, "method not allowed: POST /__mock__/health (allowed: GET)")
        assert reply.headers["allow"] == "GET"
        expect(await acall(emu.control_url, "GET", "/__mock__/health/"), 200)  # a trailing slash is the same route

    run(main)


def test_an_oversized_body_is_413_and_the_server_goes_on() -> None:
    async def main(emu: Emulator) -> None:
        head = b"POST /__mock__/push HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n"
        answer = await raw_http(emu, head + b"{" * 1000)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b'{"error":"request body too large: 2000000 bytes (at most 1048576)"}' in answer
        reply = await acall(emu.control_url, "POST", "/__mock__/push", raw=b" " * (2**20 + 1))
        expect(reply, 413, "request body too large: 1048577 bytes (at most 1048576)")
        chunked = b"POST /__mock__/push HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        chunk = b"%x\r\n" % 2**19 + b" " * 2**19 + b"\r\n"
        answer = await raw_http(emu, chunked + chunk * 3)
        assert answer.startswith(b"HTTP/1.1 413 ")
        expect(await acall(emu.control_url, "GET", "/__mock__/health"), 200)

    run(main)


def test_malformed_http_is_400_oversized_headers_431_and_the_server_goes_on() -> None:
    async def main(emu: Emulator) -> None:
        answer = await raw_http(emu, b"GARBAGE\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b'"error":"malformed HTTP request: illegal request line' in answer
        answer = await raw_http(emu, b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 ")
        answer = await raw_http(emu, b"GET /__mock__/health HTTP/1.1\r\ncontent-length: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        expect(await acall(emu.control_url, "GET", "/__mock__/health"), 200)

    run(main)


def test_connections_are_kept_alive_between_requests() -> None:
    async def main(emu: Emulator) -> None:
        port = int(emu.control_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        one = b"GET /__mock__/health HTTP/1.1\r\nhost: x\r\n\r\n"
        writer.write(one + b"POST /__mock__/journal/reset HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        data = b""
        async with asyncio.timeout(10):
            while data.count(b"HTTP/1.1 200 OK") < 2 or not data.endswith(b'{"status":"ok"}'):
                data += await reader.read(65536)
        writer.close()

    run(main)


def test_a_client_that_closes_mid_request_costs_nothing() -> None:
    async def main(emu: Emulator) -> None:
        port = int(emu.control_url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /__mock__/push HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        sock.close()
        expect(await acall(emu.control_url, "GET", "/__mock__/health"), 200)

    run(main)
