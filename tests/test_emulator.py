"""The emulator over real sockets: a plain websockets client on 127.0.0.1 plays the RELAY client."""

from __future__ import annotations

import asyncio
import gc
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay_cli.emulator import MAX_UNACKED, Emulator
from relay_cli.protocol import (
    AUTH_FAILED,
    BAD_AUTH_STATE,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
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
) -> tuple[ClientConnection, Frame, str]:
    """Connect and authenticate: the socket, the connect result and the authorization_state blob."""
    ws = await open_ws(emu)
    params = connect_params(
        project="proj", token="secret-token", contexts=contexts, protocol=protocol, authorization_state=state
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0, log=lines.append) as emu:
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
        async with Emulator(project="proj", token="secret-token", demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
            ws = await open_ws(emu)
            await send(ws, request("signalwire.connect", connect_params(jwt="a.b.c")))
            reply = await recv(ws)
            assert PROTOCOL_RE.match(reply["result"]["protocol"])
            await ws.close()

    run(main)


def test_a_first_request_other_than_connect_gets_an_error_and_the_socket_closes() -> None:
    async def main() -> None:
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            await send(ws, request("signalwire.ping", {"timestamp": 1234.5}, "p-1"))
            assert await recv(ws) == result("p-1", {"timestamp": 1234.5})
            await ws.close()

    run(main)


def test_unknown_method_gets_32601_with_the_same_id() -> None:
    async def main() -> None:
        async with Emulator(demo=False, ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            await send(ws, request("calling.answer", {"call_id": "x"}, "m-1"))
            reply = await recv(ws)
            assert reply["id"] == "m-1"
            assert reply["error"]["code"] == METHOD_NOT_FOUND
            await ws.close()

    run(main)


def test_garbage_from_a_connected_client_is_logged_and_ignored() -> None:
    lines: list[str] = []

    async def main() -> None:
        async with Emulator(demo=False, ping_interval=0, log=lines.append) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0.05) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
            ws, _, _ = await session(emu)
            await emu.inject('{"jsonrpc": "2.0", "broken')
            assert await ws.recv() == '{"jsonrpc": "2.0", "broken'
            await emu.inject(b'{"id": 1}')
            assert await ws.recv() == '{"id": 1}'
            await ws.close()

    run(main)


def test_disconnect_restart_waits_for_the_reply_then_closes_and_forgets_the_session() -> None:
    async def main() -> None:
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
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
        async with Emulator(demo=False, ping_interval=0, log=lines.append) as emu:
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
        async with Emulator(demo=False, ping_interval=0) as emu:
            clients = [await session(emu) for _ in range(2)]
            await emu.wait_for_connections(2, timeout=1)
            with pytest.raises(TimeoutError):
                await emu.wait_for_connections(3, timeout=0.1)
            for ws, _, _ in clients:
                await ws.close()

    run(main)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_serves_wss(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
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
