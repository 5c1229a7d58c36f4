"""The emulator over real sockets: a plain websockets client on 127.0.0.1 plays the RELAY client."""

from __future__ import annotations

import asyncio
import gc
import re
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
import pytest
from tls import certificate, server_context
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import relay_cli.emulator.sessions as emulator_module
from relay_cli.emulator import MAX_CONTEXT_LENGTH, MAX_CONTEXTS, MAX_UNACKED, Emulator
from relay_cli.protocol import (
    AUTH_FAILED,
    BAD_AUTH_STATE,
    CALL_GONE,
    CALL_NOT_FOUND,
    CALL_PASS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Kind,
    ack,
    connect_params,
    request,
    result,
)

T = TypeVar("T")
Frame = dict[str, Any]

PROTOCOL_RE = re.compile(r"^signalwire_[0-9a-f]{64}_[0-9a-f-]{36}_.+$")
INBOUND = ("calling.call.receive", "messaging.receive")


def run(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
    """Run a test's coroutine; fail on anything the loop reports, such as a task exception never retrieved."""
    problems: list[dict[str, Any]] = []

    async def wrapper() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: problems.append(context))
        try:
            return await asyncio.wait_for(main(), timeout)
        finally:
            gc.collect()

    value = asyncio.run(wrapper())
    assert problems == []
    return value


async def send(ws: ClientConnection, frame: Frame) -> None:
    await ws.send(orjson.dumps(frame).decode())


async def recv(ws: ClientConnection, timeout: float = 2.0) -> Frame:
    frame: Frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def until(ws: ClientConnection, pred: Callable[[Frame], bool], timeout: float = 3.0) -> Frame:
    """The first frame matching ``pred``; frames before it are skipped."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv(ws, timeout)
            if pred(frame):
                return frame


async def events(ws: ClientConnection, n: int, *, acks: bool = True) -> list[Frame]:
    """The next ``n`` events other than authorization.state, ACKed unless told not to."""
    out: list[Frame] = []
    while len(out) < n:
        frame = await recv(ws)
        if frame.get("method") != "signalwire.event":
            continue
        if acks:
            await send(ws, ack(frame["id"]))
        if frame["params"]["event_type"] != "signalwire.authorization.state":
            out.append(frame)
    return out


async def silent(ws: ClientConnection, seconds: float) -> bool:
    """True when nothing arrives for ``seconds``."""
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def eventually(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def open_ws(emu: Emulator) -> ClientConnection:
    # A client that stops reading under a flood cannot see the server's close frame: keep its close short.
    return await connect(emu.url, ping_interval=None, close_timeout=0.3)


async def session(
    emu: Emulator,
    *,
    contexts: tuple[str, ...] = (),
    protocol: str | None = None,
    state: str | None = None,
    token: str = "secret-token",  # noqa: S107 (a test credential)
    jwt: str | None = None,
) -> tuple[ClientConnection, Frame, str]:
    """Connect and authenticate: the socket, the connect result and the authorization_state blob."""
    ws = await open_ws(emu)
    params = connect_params(
        project="proj", token=token, jwt=jwt, contexts=contexts, protocol=protocol, authorization_state=state
    )
    await send(ws, request("signalwire.connect", params, "connect-1"))
    reply = await recv(ws)
    assert "result" in reply, reply
    auth = await recv(ws)
    assert auth["params"]["event_type"] == "signalwire.authorization.state"
    await send(ws, ack(auth["id"]))
    blob: str = auth["params"]["params"]["authorization_state"]
    return ws, reply["result"], blob


async def rejected(ws: ClientConnection, frame: Frame) -> Frame:
    """Send ``frame`` as the first request; return the error reply after checking the socket then closes."""
    await send(ws, frame)
    reply = await recv(ws)
    assert "error" in reply, reply
    await asyncio.wait_for(ws.wait_closed(), 2)
    return reply


def test_connect_result_has_the_real_shape_and_authorization_state_follows() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            assert emu.url.startswith("ws://127.0.0.1:")
            ws = await open_ws(emu)
            params = connect_params(project="proj", token="secret-token", contexts=["office"])
            await send(ws, request("signalwire.connect", params, "c-1"))
            reply = await recv(ws)
            assert reply["id"] == "c-1"
            res = reply["result"]
            assert PROTOCOL_RE.match(res["protocol"])
            assert res["protocol"].endswith("_proj")
            assert res["session_restored"] is False
            assert res["authorization"]["project"] == "proj"
            assert isinstance(res["authorization"]["scopes"], list)
            assert "expires_at" in res["authorization"]
            for key in ("identity", "sessionid", "nodeid"):
                assert isinstance(res[key], str) and res[key]
            event = await recv(ws)
            assert event["method"] == "signalwire.event"
            payload = event["params"]
            assert payload["event_type"] == "signalwire.authorization.state"
            assert payload["event_channel"] == res["protocol"]
            blob = payload["params"]["authorization_state"]
            assert isinstance(blob, str) and len(blob) > 40
            await ws.close()
            assert emu.stats.sessions_created == 1

    run(main)


def test_bad_credentials_get_32002_and_the_socket_closes_and_no_secret_is_logged() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            for auth in ({"project": "proj", "token": ""}, {"project": "proj"}, {"jwt_token": ""}, "x", None):
                ws = await open_ws(emu)
                params = {"authentication": auth, "agent": "test"}
                reply = await rejected(ws, request("signalwire.connect", params, "c-1"))
                assert reply["id"] == "c-1"
                assert reply["error"]["code"] == AUTH_FAILED
                assert "401 Unauthorized" in reply["error"]["message"]
            assert emu.stats.auth_failures == 5
            ws, _, blob = await session(emu)
            await ws.close()
        text = "\n".join(lines)
        assert "secret-token" not in text
        assert blob not in text

    run(main)


def test_fixed_project_and_token_are_the_only_credentials_accepted() -> None:
    async def main() -> None:
        async with Emulator(project="proj", token="secret-token", mode="app", ping_interval=0) as emu:
            for auth in (
                {"project": "proj", "token": "wrong"},
                {"project": "other", "token": "secret-token"},
                {"jwt_token": "a.b.c"},
            ):
                ws = await open_ws(emu)
                reply = await rejected(ws, request("signalwire.connect", {"authentication": auth}))
                assert reply["error"]["code"] == AUTH_FAILED
            ws, res, _ = await session(emu)
            assert res["authorization"]["project"] == "proj"
            await ws.close()

    run(main)


def test_jwt_is_accepted_when_no_credentials_are_fixed() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws = await open_ws(emu)
            await send(ws, request("signalwire.connect", connect_params(jwt="a.b.c")))
            reply = await recv(ws)
            assert PROTOCOL_RE.match(reply["result"]["protocol"])
            await ws.close()

    run(main)


def test_a_first_request_other_than_connect_gets_an_error_and_the_socket_closes() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws = await open_ws(emu)
            reply = await rejected(ws, request("signalwire.ping", {"timestamp": 1.0}, "p-1"))
            assert reply["id"] == "p-1"
            ws = await open_ws(emu)
            await ws.send("not json")
            assert "error" in await recv(ws)
            await asyncio.wait_for(ws.wait_closed(), 2)
            assert emu.stats.sessions_created == 0

    run(main)


def test_client_ping_is_answered_with_its_timestamp() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            await send(ws, request("signalwire.ping", {"timestamp": 1234.5}, "p-1"))
            assert await recv(ws) == result("p-1", {"timestamp": 1234.5})
            await ws.close()

    run(main)


def test_unknown_method_gets_32601_with_the_same_id() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            await send(ws, request("calling.no_such_verb", {"call_id": "x"}, "m-1"))
            reply = await recv(ws)
            assert reply["id"] == "m-1"
            assert reply["error"]["code"] == METHOD_NOT_FOUND
            await ws.close()

    run(main)


def test_garbage_from_a_connected_client_is_logged_and_ignored() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            ws, _, _ = await session(emu)
            for junk in ("not json {", "[1, 2]", '{"jsonrpc": "2.0"}', b"\xff\xfe"):
                await ws.send(junk)
            await send(ws, {"jsonrpc": "2.0", "id": "no-such-event", "result": {}})
            await send(ws, request("signalwire.ping", {}, "p-1"))
            reply = await recv(ws)
            assert reply["id"] == "p-1"
            await ws.close()
        assert sum("ignored a frame" in line for line in lines) == 4

    run(main)


def test_receive_and_unreceive_reject_contexts_that_are_not_a_list_of_names() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            for method in ("signalwire.receive", "signalwire.unreceive"):
                for params in ({"contexts": "office"}, {"contexts": [""]}, {"contexts": [1]}, {}):
                    await send(ws, request(method, params, "r-1"))
                    reply = await recv(ws)
                    assert reply["error"]["code"] == INVALID_PARAMS, (method, params)
                await send(ws, request(method, {"contexts": ["office"]}, "r-2"))
                reply = await recv(ws)
                assert reply["id"] == "r-2"
                assert reply["result"]["code"] == "200"
            await ws.close()

    run(main)


def _inbound_contexts(frames: list[Frame]) -> set[str]:
    found = set()
    for frame in frames:
        payload = frame["params"]
        if payload["event_type"] in INBOUND:
            found.add(payload.get("context"))
            found.add(payload["params"].get("context"))
    return found


def test_demo_traffic_follows_the_subscribed_contexts() -> None:
    async def main() -> None:
        async with Emulator(rate=0, seed=7, ping_interval=0) as emu:
            ws, res, _ = await session(emu, contexts=("office",))
            first = await events(ws, 300)
            assert _inbound_contexts(first) == {"office"}
            assert {f["params"]["event_channel"] for f in first} == {res["protocol"]}

            await send(ws, request("signalwire.receive", {"contexts": ["sales"]}, "r-1"))
            await until(ws, lambda f: f.get("id") == "r-1")
            await send(ws, request("signalwire.unreceive", {"contexts": ["office"]}, "r-2"))
            await until(ws, lambda f: f.get("id") == "r-2")
            after = await events(ws, 300)
            assert _inbound_contexts(after) == {"sales"}

            await send(ws, request("signalwire.unreceive", {"contexts": ["sales"]}, "r-3"))
            await until(ws, lambda f: f.get("id") == "r-3")
            outbound_only = await events(ws, 300)
            assert _inbound_contexts(outbound_only) == set()
            await ws.close()

    run(main)


def test_a_session_without_contexts_gets_outbound_traffic_only() -> None:
    async def main() -> None:
        async with Emulator(rate=0, seed=3, ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            frames = await events(ws, 300)
            assert _inbound_contexts(frames) == set()
            await ws.close()

    run(main)


def test_events_cap_is_honoured() -> None:
    async def main() -> None:
        async with Emulator(rate=0, events=25, seed=1, ping_interval=0) as emu:
            ws, _, _ = await session(emu, contexts=("office",))
            assert len(await events(ws, 25)) == 25
            assert await silent(ws, 0.3)
            assert emu.stats.events_sent == 25
            await eventually(lambda: emu.stats.events_acked == 25)
            await ws.close()

    run(main)


def test_rate_paces_demo_traffic() -> None:
    async def main() -> None:
        async with Emulator(rate=50, seed=1, ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await events(ws, 20)
            elapsed = loop.time() - start
            assert 0.3 < elapsed < 1.5
            await ws.close()

    run(main)


def test_high_rates_are_paced_too() -> None:
    async def main() -> None:
        async with Emulator(rate=1000, seed=1, ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await events(ws, 400)
            elapsed = loop.time() - start
            assert 0.3 < elapsed < 1.5
            await ws.close()

    run(main)


def test_unacked_events_are_redelivered_first_after_a_drop_and_resume_and_the_cap_spans_both() -> None:
    async def main() -> None:
        async with Emulator(rate=0, events=20, seed=1, ping_interval=0) as emu:
            ws, res, blob = await session(emu, contexts=("office",))
            sent = await events(ws, 20, acks=False)
            for frame in sent[:5]:
                await send(ws, ack(frame["id"]))
            await eventually(lambda: emu.stats.events_acked == 5)
            await emu.drop()
            with pytest.raises(ConnectionClosed):
                await recv(ws)

            ws, again, _ = await session(emu, protocol=res["protocol"], state=blob)
            assert again["session_restored"] is True
            assert again["protocol"] == res["protocol"]
            redelivered = await events(ws, 15)
            assert [f["id"] for f in redelivered] == [f["id"] for f in sent[5:]]
            assert [f["params"] for f in redelivered] == [f["params"] for f in sent[5:]]
            assert await silent(ws, 0.3)
            assert emu.stats.events_redelivered == 15
            assert emu.stats.sessions_resumed == 1
            await ws.close()

    run(main)


def test_a_resumed_session_continues_its_event_stream() -> None:
    def flows(frames: list[Frame]) -> set[str]:
        ids = set()
        for frame in frames:
            params = frame["params"]["params"]
            ids.add(params.get("call_id") or params.get("tag") or params.get("message_id"))
        return ids - {None}

    async def main() -> None:
        async with Emulator(rate=300, seed=5, ping_interval=0) as emu:
            ws, res, blob = await session(emu, contexts=("office",))
            before = await events(ws, 60)
            await emu.drop()
            drawn = emu.stats.events_sent
            ws, _, _ = await session(emu, protocol=res["protocol"], state=blob)
            # Redelivery comes first; once new events are drawn, its count is final.
            await eventually(lambda: emu.stats.events_sent > drawn)
            redelivered = emu.stats.events_redelivered
            after = await events(ws, redelivered + 40)
            seen, new = before + after[:redelivered], after[redelivered:]
            # Calls and messages in progress at the drop go on after the resume.
            assert flows(seen) & flows(new)
            await ws.close()

    run(main)


def test_a_fresh_session_does_not_get_another_sessions_unacked_events() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            frame_id = await emu.push({"event_type": "calling.call.state", "params": {"call_id": "c"}})
            pushed = await recv(ws)
            assert pushed["id"] == frame_id
            await emu.drop()
            ws, res, _ = await session(emu)
            assert res["session_restored"] is False
            assert await silent(ws, 0.3)
            assert emu.stats.events_redelivered == 0
            await ws.close()

    run(main)


def test_resume_with_a_wrong_authorization_state_gets_32003_and_an_unknown_protocol_32002() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, res, _ = await session(emu)
            await emu.drop()
            ws = await open_ws(emu)
            params = connect_params(
                project="proj", token="secret-token", protocol=res["protocol"], authorization_state="stale"
            )
            reply = await rejected(ws, request("signalwire.connect", params))
            assert reply["error"]["code"] == BAD_AUTH_STATE

            ws = await open_ws(emu)
            unknown = "signalwire_" + "0" * 64 + "_00000000-0000-4000-8000-000000000000_proj"
            params = connect_params(project="proj", token="secret-token", protocol=unknown)
            reply = await rejected(ws, request("signalwire.connect", params))
            assert reply["error"]["code"] == AUTH_FAILED

            # Without an authorization_state the protocol alone still resumes.
            ws, again, _ = await session(emu, protocol=res["protocol"])
            assert again["session_restored"] is True
            await ws.close()

    run(main)


def test_resuming_a_session_still_attached_elsewhere_drops_the_old_socket() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            old, res, blob = await session(emu)
            frame_id = await emu.push({"event_type": "calling.call.state", "params": {}})
            assert (await recv(old))["id"] == frame_id
            new, again, _ = await session(emu, protocol=res["protocol"], state=blob)
            assert again["session_restored"] is True
            assert (await recv(new))["id"] == frame_id
            with pytest.raises(ConnectionClosed):
                await recv(old)
            await new.close()

    run(main)


def test_server_pings_arrive_every_ping_interval_and_answers_are_counted() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0.05) as emu:
            ws, _, _ = await session(emu)
            loop = asyncio.get_running_loop()
            start = loop.time()
            stamps = []
            for _ in range(4):
                ping = await recv(ws)
                assert ping["method"] == "signalwire.ping"
                stamps.append(ping["params"]["timestamp"])
                await send(ws, result(ping["id"], {"timestamp": ping["params"]["timestamp"]}))
            assert 0.15 < loop.time() - start < 1.0
            assert stamps == sorted(stamps)
            await eventually(lambda: emu.stats.pings_answered >= 4)
            await ws.close()

    run(main)


def test_freeze_holds_every_reply_and_event_until_thaw() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            emu.freeze()
            await send(ws, request("signalwire.ping", {"timestamp": 1.0}, "p-1"))
            push = asyncio.create_task(emu.push({"event_type": "calling.call.state", "params": {}}))
            assert await silent(ws, 0.3)
            assert not push.done()
            emu.thaw()
            frames = [await recv(ws), await recv(ws)]
            assert {f.get("id") for f in frames} >= {"p-1", await push}
            await ws.close()

    run(main)


def test_inject_sends_the_raw_text_as_is() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            await emu.inject('{"jsonrpc": "2.0", "broken')
            assert await ws.recv() == '{"jsonrpc": "2.0", "broken'
            await emu.inject(b'{"id": 1}')
            assert await ws.recv() == '{"id": 1}'
            await ws.close()

    run(main)


def test_disconnect_restart_waits_for_the_reply_then_closes_and_forgets_the_session() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, res, blob = await session(emu)
            task = asyncio.create_task(emu.send_disconnect(restart=True))
            frame = await recv(ws)
            assert frame["method"] == "signalwire.disconnect"
            assert frame["params"] == {"restart": True}
            await asyncio.sleep(0.2)
            assert not task.done()
            await send(ws, ack(frame["id"]))
            await asyncio.wait_for(ws.wait_closed(), 1)
            await asyncio.wait_for(task, 1)

            ws = await open_ws(emu)
            params = connect_params(
                project="proj", token="secret-token", protocol=res["protocol"], authorization_state=blob
            )
            reply = await rejected(ws, request("signalwire.connect", params))
            assert reply["error"]["code"] == AUTH_FAILED

    run(main)


def test_disconnect_without_restart_keeps_the_session_resumable() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, res, blob = await session(emu)
            task = asyncio.create_task(emu.send_disconnect())
            frame = await recv(ws)
            assert frame["params"] == {}
            await send(ws, ack(frame["id"]))
            await asyncio.wait_for(ws.wait_closed(), 1)
            await task
            ws, again, _ = await session(emu, protocol=res["protocol"], state=blob)
            assert again["session_restored"] is True
            await ws.close()

    run(main)


def test_disconnect_closes_anyway_when_the_client_never_replies() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            ws, _, _ = await session(emu)
            loop = asyncio.get_running_loop()
            start = loop.time()
            task = asyncio.create_task(emu.send_disconnect())
            assert (await recv(ws))["method"] == "signalwire.disconnect"
            with pytest.raises(ConnectionClosed):
                await recv(ws, timeout=4)
            await task
            assert 1.8 < loop.time() - start < 3.5
        assert any("no reply to signalwire.disconnect" in line for line in lines)

    run(main)


def test_the_unacked_store_is_bounded_keeping_the_newest() -> None:
    lines: list[str] = []

    async def main() -> None:
        total = MAX_UNACKED + 50
        async with Emulator(rate=0, events=total, seed=4, ping_interval=0, log=lines.append) as emu:
            ws, res, blob = await session(emu)
            sent = await events(ws, total, acks=False)
            await emu.drop()
            ws, _, _ = await session(emu, protocol=res["protocol"], state=blob)
            redelivered = await events(ws, MAX_UNACKED, acks=False)
            assert redelivered[0]["id"] == sent[50]["id"]
            assert redelivered[-1]["id"] == sent[-1]["id"]
            assert await silent(ws, 0.2)
            await ws.close()
        assert any("forgot the oldest" in line for line in lines)

    run(main)


def test_replay_sends_the_recording_in_order_stamped_with_the_session_channel() -> None:
    recording = [
        {"event_type": "calling.call.state", "params": {"call_id": "a", "call_state": "ringing"}},
        {"event_type": "calling.call.play", "event_channel": "swml:x", "params": {"call_id": "a"}},
        {"event_type": "messaging.state", "params": {"message_id": "m"}},
    ]

    async def main() -> None:
        async with Emulator(replay=recording, rate=0, ping_interval=0) as emu:
            for _ in range(2):
                ws, res, _ = await session(emu)
                frames = await events(ws, 3)
                assert [f["params"]["event_type"] for f in frames] == [p["event_type"] for p in recording]
                channels = [f["params"]["event_channel"] for f in frames]
                assert channels == [res["protocol"], "swml:x", res["protocol"]]
                assert await silent(ws, 0.2)
                await ws.close()

    run(main)


def test_a_client_vanishing_mid_flood_leaves_the_server_serving() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(rate=0, seed=2, ping_interval=0, log=lines.append) as emu:
            for _ in range(3):
                ws, _, _ = await session(emu, contexts=("office",))
                await events(ws, 200, acks=False)
                ws.transport.abort()
            await eventually(lambda: sum("disconnected" in line for line in lines) == 3)
            ws, _, _ = await session(emu)
            await send(ws, request("signalwire.ping", {}, "p-1"))
            await until(ws, lambda f: f.get("id") == "p-1")
            await ws.close()
        assert not [line for line in lines if "error" in line]

    run(main)


def test_wait_for_connections_counts_successful_connects() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            clients = [await session(emu) for _ in range(2)]
            await emu.wait_for_connections(2, timeout=1)
            with pytest.raises(TimeoutError):
                await emu.wait_for_connections(3, timeout=0.1)
            for ws, _, _ in clients:
                await ws.close()

    run(main)


def test_tls_serves_wss() -> None:
    cert, _ = certificate()
    server = server_context()
    client = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with Emulator(ssl=server, rate=0, events=200, ping_interval=0) as emu:
            assert emu.url.startswith("wss://127.0.0.1:")
            async with connect(emu.url, ssl=client, ping_interval=None) as ws:
                params = connect_params(project="proj", token="secret-token")
                await send(ws, request("signalwire.connect", params))
                assert "result" in await recv(ws)
                assert len(await events(ws, 200)) == 200
            await eventually(lambda: emu.stats.events_acked == 200)

    run(main)


# -- routing of inbound calls: one session at a time, calling.pass to the next ------------------------------------


async def until_pong(ws: ClientConnection) -> list[Frame]:
    """Every event that arrives before the reply to a ping sent now (ACKed): what the server wrote before it."""
    ping_id = f"ping-{id(ws)}-{asyncio.get_running_loop().time()}"
    await send(ws, request("signalwire.ping", {}, ping_id))
    got: list[Frame] = []
    while True:
        frame = await recv(ws)
        if frame.get("id") == ping_id and "result" in frame:
            return got
        if frame.get("method") == "signalwire.event":
            await send(ws, ack(frame["id"]))
            got.append(frame)


async def pass_call(
    ws: ClientConnection, call_id: str, node_id: str = "node", seen: list[Frame] | None = None
) -> Frame:
    """Send calling.pass and return its reply, ACKing the events that arrive first (added to ``seen``)."""
    rid = f"pass-{call_id}-{asyncio.get_running_loop().time()}"
    await send(ws, request(CALL_PASS, {"node_id": node_id, "call_id": call_id}, rid))
    while True:
        frame = await recv(ws)
        if frame.get("id") == rid:
            return frame
        if frame.get("method") == "signalwire.event":
            await send(ws, ack(frame["id"]))
            if seen is not None:
                seen.append(frame)


def receives(frames: list[Frame]) -> list[str]:
    return [f["params"]["params"]["call_id"] for f in frames if f["params"]["event_type"] == "calling.call.receive"]


def of_call(frames: list[Frame], call_id: str) -> list[Frame]:
    def belongs(params: Frame) -> bool:
        peer = params.get("peer")
        return params.get("call_id") == call_id or (isinstance(peer, dict) and peer.get("call_id") == call_id)

    return [f for f in frames if belongs(f["params"]["params"])]


def test_inbound_calls_are_offered_to_one_session_on_their_context_in_turn() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            a, res_a, _ = await session(emu, contexts=("office",))
            b, res_b, _ = await session(emu, contexts=("office", "sales"))
            other, _, _ = await session(emu, contexts=("sales",))
            calls = [await emu.offer_call("office") for _ in range(4)]
            got_a, got_b, got_other = await until_pong(a), await until_pong(b), await until_pong(other)
            assert receives(got_a) == [calls[0], calls[2]]
            assert receives(got_b) == [calls[1], calls[3]]
            assert got_other == []
            offer = got_a[0]["params"]
            assert offer["event_channel"] == res_a["protocol"]
            assert offer["params"]["context"] == "office"
            assert offer["params"]["call_state"] == "created"
            assert got_b[0]["params"]["event_channel"] == res_b["protocol"]
            assert emu.stats.calls_offered == 4
            for ws in (a, b, other):
                await ws.close()

    run(main)


def test_pass_offers_the_call_to_the_next_session_and_the_last_pass_leaves_it_ringing_until_the_ring_timeout() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, ring_timeout=1.0, log=lines.append) as emu:
            a, _, _ = await session(emu, contexts=("office",))
            b, _, _ = await session(emu, contexts=("office",))
            call_id = await emu.offer_call("office")
            offer = (await until_pong(a))[0]["params"]["params"]
            assert offer["call_id"] == call_id

            reply = await pass_call(a, call_id, offer["node_id"])
            assert reply["result"] == {"code": "200", "message": "Passing call", "call_id": call_id}
            assert receives(await until_pong(b)) == [call_id]
            assert (await pass_call(a, call_id))["result"]["code"] == CALL_NOT_FOUND  # a passed it: not a's now

            assert (await pass_call(b, call_id))["result"]["code"] == "200"
            assert emu.stats.calls_passed == 2
            await eventually(lambda: any("rang out with nobody holding it" in line for line in lines), 10)
            for ws in (a, b):
                assert await until_pong(ws) == []  # nobody is sent the call's end
                gone = await pass_call(ws, call_id)
                assert gone["result"] == {"code": CALL_GONE, "message": "Call has ended", "call_id": call_id}
                await ws.close()

    run(main, timeout=20)


def test_the_session_holding_a_call_at_its_ring_timeout_is_sent_its_end() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, ring_timeout=0.2) as emu:
            ws, _, _ = await session(emu, contexts=("office",))
            call_id = await emu.offer_call("office", from_number="+15551230000")
            ended = await until(ws, lambda f: f.get("params", {}).get("params", {}).get("call_state") == "ended", 10)
            assert ended["params"]["event_type"] == "calling.call.state"
            assert ended["params"]["params"]["call_id"] == call_id
            assert ended["params"]["params"]["end_reason"] == "noAnswer"
            assert (await pass_call(ws, call_id))["result"]["code"] == CALL_GONE
            await ws.close()

    run(main, timeout=20)


def test_pass_without_call_id_or_node_id_is_32602_naming_the_field_and_an_unknown_call_is_404() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0) as emu:
            ws, _, _ = await session(emu, contexts=("office",))
            for params, field in (
                ({"node_id": "n"}, "call_id"),
                ({"call_id": "c"}, "node_id"),
                ({"call_id": 1}, "call_id"),
            ):
                await send(ws, request(CALL_PASS, params, "p-1"))
                reply = await recv(ws)
                assert reply["error"]["code"] == INVALID_PARAMS
                assert field in reply["error"]["message"]
            await send(ws, {"jsonrpc": "2.0", "id": "p-2", "method": CALL_PASS, "params": ["c"]})
            assert (await recv(ws))["error"] == {"code": INVALID_PARAMS, "message": "params must be an object"}
            reply = await pass_call(ws, "no-such-call")
            assert reply["result"] == {"code": CALL_NOT_FOUND, "message": "Call not found", "call_id": "no-such-call"}
            await ws.close()

    run(main)


def test_a_passed_demo_call_goes_with_the_rest_of_its_events_to_the_next_session() -> None:
    async def main() -> None:
        async with Emulator(rate=400, seed=11, ping_interval=0) as emu:
            a, _, _ = await session(emu, contexts=("office",))
            b, res_b, _ = await session(emu, contexts=("office",))
            b_frames: list[Frame] = []
            while True:  # the first of a's own calls that is still under way when the pass arrives
                frame = await until(a, lambda f: f.get("method") == "signalwire.event", 5)
                await send(a, ack(frame["id"]))
                if frame["params"]["event_type"] != "calling.call.receive":
                    continue
                call_id = frame["params"]["params"]["call_id"]
                reply = await pass_call(a, call_id, frame["params"]["params"]["node_id"])
                if reply["result"]["code"] == "200":
                    break
            after_pass: list[Frame] = []
            async with asyncio.timeout(15):
                while not any(f["params"]["params"].get("call_state") == "ended" for f in of_call(b_frames, call_id)):
                    b_frames += await until_pong(b)
                    after_pass += await until_pong(a)
            mine = of_call(b_frames, call_id)
            assert mine[0]["params"]["event_type"] == "calling.call.receive"
            assert {f["params"]["event_channel"] for f in mine} == {res_b["protocol"]}
            assert mine[-1]["params"]["params"]["call_state"] == "ended"
            assert of_call(after_pass, call_id) == []
            await asyncio.sleep(0)
            assert of_call(await until_pong(b), call_id) == []
            assert (await pass_call(b, call_id))["result"]["code"] == CALL_GONE
            for ws in (a, b):
                await ws.close()

    run(main, timeout=30)


def test_a_demo_call_its_only_session_passed_is_sent_to_nobody() -> None:
    async def main() -> None:
        async with Emulator(rate=400, seed=11, ping_interval=0, ring_timeout=0.5) as emu:
            ws, res, _ = await session(emu, contexts=("office",))
            own = emu._sessions[res["protocol"]]
            while True:
                frame = await until(ws, lambda f: f.get("method") == "signalwire.event", 5)
                await send(ws, ack(frame["id"]))
                if frame["params"]["event_type"] == "calling.call.receive":
                    call_id = frame["params"]["params"]["call_id"]
                    if (await pass_call(ws, call_id))["result"]["code"] == "200":
                        break
            after_pass: list[Frame] = []
            async with asyncio.timeout(15):
                while call_id not in own.ended_calls:  # until the demo stream has played the whole call
                    after_pass += await until_pong(ws)
            assert of_call(after_pass, call_id) == []
            assert (await pass_call(ws, call_id))["result"]["code"] == CALL_GONE
            await ws.close()

    run(main, timeout=30)


# -- relay serve under hostile clients -----------------------------------------------------------------------------


def test_resume_needs_the_credentials_that_opened_the_session() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            _, res, blob = await session(emu)
            await emu.drop()
            for auth in ({"project": "proj", "token": "another-token"}, {"jwt_token": "a.b.c"}):
                ws = await open_ws(emu)
                params = {**connect_params(project="p", token="t", protocol=res["protocol"]), "authentication": auth}
                reply = await rejected(ws, request("signalwire.connect", params))
                assert reply["error"] == {"code": AUTH_FAILED, "message": "session not found"}
            ws, again, _ = await session(emu, protocol=res["protocol"], state=blob)
            assert again["session_restored"] is True
            await ws.close()

            _, jwt_res, _ = await session(emu, jwt="header.payload.signature-one")
            await emu.drop()
            ws = await open_ws(emu)
            params = connect_params(jwt="header.payload.signature-two", protocol=jwt_res["protocol"])
            assert (await rejected(ws, request("signalwire.connect", params)))["error"]["code"] == AUTH_FAILED
            ws, again, _ = await session(emu, jwt="header.payload.signature-one", protocol=jwt_res["protocol"])
            assert again["session_restored"] is True
            await ws.close()
        text = "\n".join(lines)
        assert "resume refused: credentials differ from the session's" in text
        for secret in ("secret-token", "another-token", "signature-one", "signature-two"):
            assert secret not in text

    run(main)


def test_a_socket_that_never_sends_connect_is_closed_after_the_connect_timeout() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, connect_timeout=0.3, log=lines.append) as emu:
            ws = await open_ws(emu)
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1008
            assert ws.close_reason == "signalwire.connect not sent in time"
            late, _, _ = await session(emu)  # a client that connects in time is not affected
            await send(late, request("signalwire.ping", {}, "p-1"))
            assert (await recv(late))["id"] == "p-1"
            await late.close()
        assert any("no signalwire.connect within 0.3 s, closing" in line for line in lines)

    run(main)


def test_the_unacked_store_is_bounded_in_bytes_keeping_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator_module, "MAX_UNACKED_BYTES", 1_000_000)
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            ws, res, blob = await session(emu)
            ids = [
                await emu.push({"event_type": "calling.call.state", "params": {"pad": "x" * 100_000}})
                for _ in range(20)
            ]
            await emu.drop()
            ws, _, _ = await session(emu, protocol=res["protocol"], state=blob)
            redelivered = [f["id"] for f in await until_pong(ws)]
            assert 5 <= len(redelivered) < 10  # about 1,000,000 bytes of ~100,100-byte frames
            assert redelivered == ids[-len(redelivered) :]
            await ws.close()
        assert any("MiB of them: forgot the oldest" in line for line in lines)

    run(main)


def test_contexts_are_capped_in_number_and_length_and_never_logged_whole() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            for contexts, message in (
                ([f"c{i}" for i in range(MAX_CONTEXTS + 1)], f"at most {MAX_CONTEXTS} contexts per session"),
                (["x" * (MAX_CONTEXT_LENGTH + 1)], f"a context is at most {MAX_CONTEXT_LENGTH} characters"),
            ):
                ws = await open_ws(emu)
                params = connect_params(project="proj", token="secret-token", contexts=contexts)
                reply = await rejected(ws, request("signalwire.connect", params))
                assert reply["error"] == {"code": INVALID_PARAMS, "message": message}
            many = [f"context-number-{i}" for i in range(MAX_CONTEXTS)]
            ws, _, _ = await session(emu, contexts=tuple(many))
            await send(ws, request("signalwire.receive", {"contexts": ["one-too-many"]}, "r-1"))
            reply = await recv(ws)
            assert reply["error"] == {"code": INVALID_PARAMS, "message": f"at most {MAX_CONTEXTS} contexts per session"}
            await ws.close()
        text = "\n".join(lines)
        assert (
            f"{MAX_CONTEXTS} context(s): 'context-number-0', 'context-number-1', 'context-number-2', +97 more" in text
        )
        assert "context-number-99" not in text
        assert "c100" not in text and "x" * 65 not in text

    run(main)


def test_odd_frames_from_a_connected_client_get_a_clear_error_and_the_session_goes_on() -> None:
    lines: list[str] = []
    deep = "[" * 300 + "]" * 300

    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, log=lines.append) as emu:
            ws, _, _ = await session(emu)
            cases: list[tuple[str, Any, int]] = [
                ('{"jsonrpc":"2.0","id":"p-1","method":"signalwire.ping","params":[1]}', "p-1", INVALID_PARAMS),
                ('{"jsonrpc":"2.0","id":"p-2","method":"signalwire.receive","params":"office"}', "p-2", INVALID_PARAMS),
                ('{"jsonrpc":"2.0","id":[1],"method":"signalwire.ping"}', None, INVALID_REQUEST),
                ('{"jsonrpc":"2.0","id":{"a":1},"method":"calling.pass"}', None, INVALID_REQUEST),
                ('{"jsonrpc":"2.0","id":true,"method":"signalwire.ping"}', None, INVALID_REQUEST),
                (f'{{"jsonrpc":"2.0","id":{deep},"method":"signalwire.ping"}}', None, INVALID_REQUEST),
                ('{"jsonrpc":"2.0","id":7,"method":"' + "m" * 100_000 + '"}', 7, METHOD_NOT_FOUND),
            ]
            for raw, rid, code in cases:
                await ws.send(raw)
                reply = await recv(ws)
                assert reply["id"] == rid and reply["error"]["code"] == code, raw[:80]
                assert len(reply["error"]["message"]) < 200
            await ws.send(f'{{"jsonrpc":"2.0","id":"p-3","method":"signalwire.ping","params":{{"timestamp":{deep}}}}}')
            stamp = (await recv(ws))["result"]["timestamp"]
            assert isinstance(stamp, float)
            for raw in (f'{{"jsonrpc":"2.0","id":{deep},"result":{{}}}}', '{"jsonrpc":"2.0","id":[1],"error":{}}'):
                await ws.send(raw)
            await send(ws, request("signalwire.ping", {"timestamp": 1.5}, "p-4"))
            assert await recv(ws) == result("p-4", {"timestamp": 1.5})
            await ws.close()

            first = await open_ws(emu)  # odd params in the connect itself
            params = {**connect_params(project="proj", token="secret-token"), "agent": "AGENT"}
            raw_connect = orjson.dumps(request("signalwire.connect", params, "c-1")).decode()
            await first.send(raw_connect.replace('"AGENT"', deep))
            assert "result" in await recv(first)
            await first.close()
        assert not any("internal error" in line for line in lines)
        assert all(len(line) < 400 for line in lines)

    run(main)


def test_the_events_cap_counts_what_a_session_got_not_the_events_of_calls_it_passed() -> None:
    async def main() -> None:
        async with Emulator(rate=400, events=200, seed=11, ping_interval=0) as emu:
            ws, _, _ = await session(emu, contexts=("office",))
            got: list[Frame] = []
            passed = None
            while len(got) < 200:
                frame = await until(ws, lambda f: f.get("method") == "signalwire.event", 5)
                await send(ws, ack(frame["id"]))
                got.append(frame)
                if passed is None and frame["params"]["event_type"] == "calling.call.receive":
                    call_id = frame["params"]["params"]["call_id"]
                    if (await pass_call(ws, call_id, seen=got))["result"]["code"] == "200":
                        passed = call_id
            assert passed is not None
            assert len(got) == 200
            assert emu.stats.events_sent == 200
            await ws.close()

    run(main, timeout=30)


def test_the_journal_holds_every_frame_both_ways_acks_and_pings_included() -> None:
    async def main() -> None:
        async with Emulator(mode="app", ping_interval=0, journal_size=100) as emu:
            ws, res, _ = await session(emu)
            await send(ws, request("signalwire.ping", {"timestamp": 1.0}, "p-1"))
            assert (await recv(ws))["id"] == "p-1"
            frame_id = await emu.push({"event_type": "calling.call.state", "params": {"call_id": "c"}})
            assert (await recv(ws))["id"] == frame_id
            await send(ws, ack(frame_id))
            await eventually(lambda: emu.stats.events_acked == 1)
            await ws.close()
            seen = [(r.direction, r.kind, r.value.get("id")) for r in emu.journal.records()]
            assert seen == [
                ("app>relay", Kind.CONNECT, "connect-1"),
                ("relay>app", Kind.RESULT, "connect-1"),
                ("relay>app", Kind.EVENT, seen[2][2]),
                ("app>relay", Kind.RESULT, seen[2][2]),  # the ACK of authorization.state
                ("app>relay", Kind.PING, "p-1"),
                ("relay>app", Kind.RESULT, "p-1"),
                ("relay>app", Kind.EVENT, frame_id),
                ("app>relay", Kind.RESULT, frame_id),
            ]
            sessions = {s for s, _ in emu.journal.entries()}
            assert sessions == {res["sessionid"]}  # the connect request is filed under the session it opened

    run(main)
