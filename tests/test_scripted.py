"""``Emulator(mode="scripted")``: SignalWire ``mock_relay`` semantics, driven as a ``mock_relay`` test drives it.

The SDK is the app, unmodified, over real TLS loopback sockets; events come only from the control plane: pushes,
method and dial scenarios, ``inbound_call``, ``scenario_play``. Each SDK call that needs events completes only
because a scenario sent them, so a missing or misaddressed event shows up as the outer timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import signalwire.relay.client
from controlplane import acall
from signalwire.relay.call import Call
from signalwire.relay.client import RelayClient
from tls import certificate, server_context

from relay_cli.emulator import Emulator

Body = Callable[[Emulator, list[RelayClient]], Awaitable[None]]


@pytest.fixture(autouse=True)
def trust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(certificate()[0]))


def scripted(body: Body, clients: int = 1) -> None:
    async def main() -> None:
        async with Emulator(mode="scripted", ssl=server_context(), ping_interval=0, control_port=0) as emu:
            port = emu.url.rsplit(":", 1)[1]
            apps = [
                RelayClient(project="proj", token="secret-token", host=f"127.0.0.1:{port}", contexts=["default"])
                for _ in range(clients)
            ]
            for app in apps:
                await app.connect()
            try:
                async with asyncio.timeout(20):
                    await body(emu, apps)
            finally:
                for app in apps:
                    await app.disconnect()

    asyncio.run(main())


def session_of(app: RelayClient) -> str:
    """The ``sessionid`` the connect result gave the SDK (it keeps it for exactly this: scoping the mock)."""
    sid = app._session_id
    assert isinstance(sid, str) and sid
    return sid


def receive_frame(call_id: str, frame_id: str = "push-1") -> dict[str, Any]:
    params = {
        "call_id": call_id,
        "node_id": "node-1",
        "tag": "",
        "call_state": "created",
        "direction": "inbound",
        "device": {"type": "phone", "params": {"from_number": "+15551110000", "to_number": "+15552220000"}},
        "context": "default",
    }
    event = {"event_type": "calling.call.receive", "timestamp": 1.0, "params": params}
    return {"jsonrpc": "2.0", "id": frame_id, "method": "signalwire.event", "params": event}


def on_calls(app: RelayClient) -> asyncio.Queue[Call]:
    calls: asyncio.Queue[Call] = asyncio.Queue()

    @app.on_call
    async def handle(call: Call) -> None:
        await calls.put(call)

    return calls


def test_a_pushed_call_reaches_on_call_and_a_verb_gets_its_result_and_no_event() -> None:
    async def body(emu: Emulator, apps: list[RelayClient]) -> None:
        app = apps[0]
        calls = on_calls(app)
        sid = session_of(app)
        pushed = await acall(
            emu.control_url, "POST", "/__mock__/push", {"frame": receive_frame("c1"), "session_id": sid}
        )
        assert pushed.json == {"sent_to": [sid], "count": 1}
        call = await calls.get()
        assert call.call_id == "c1"
        result = await call.answer()
        assert result["code"] == "200"
        await asyncio.sleep(0.1)
        journal = (await acall(emu.control_url, "GET", f"/__mock__/journal?session_id={sid}")).json
        answers = [e for e in journal if e["method"] == "calling.answer"]
        assert [e["direction"] for e in answers] == ["recv", "send"]
        assert answers[0]["frame"]["params"]["call_id"] == "c1"
        acks = [e for e in journal if e["request_id"] == "push-1" and e["direction"] == "recv"]
        assert acks[0]["method"] == "signalwire.event"  # the SDK's ACK, paired with the pushed frame
        sent_events = [e for e in journal if e["direction"] == "send" and e["method"] == "signalwire.event"]
        assert [e["request_id"] for e in sent_events][-1] == "push-1"  # nothing followed the answer

    scripted(body)


def test_a_play_scenario_lets_play_tts_resolve() -> None:
    async def body(emu: Emulator, apps: list[RelayClient]) -> None:
        app = apps[0]
        calls = on_calls(app)
        events = [{"emit": {"state": "playing"}}, {"emit": {"state": "finished"}, "delay_ms": 20}]
        queued = await acall(
            emu.control_url, "POST", f"/__mock__/scenarios/calling.play?session_id={session_of(app)}", events
        )
        assert queued.json == {"status": "ok", "method": "calling.play", "events_queued": 2}
        await acall(emu.control_url, "POST", "/__mock__/push", {"frame": receive_frame("c2")})
        call = await calls.get()
        action = await call.play_tts("Welcome")
        finished = await action.wait()
        assert finished.params["state"] == "finished"
        assert finished.params["control_id"] == action.control_id
        assert finished.params["call_id"] == "c2"
        assert (await acall(emu.control_url, "GET", "/__mock__/scenarios")).json["methods"] == {}

    scripted(body)


def test_a_dial_scenario_resolves_dial_with_the_winner() -> None:
    async def body(emu: Emulator, apps: list[RelayClient]) -> None:
        app = apps[0]
        dial = {"tag": "t-1", "winner_call_id": "winner", "losers": [{"call_id": "loser"}]}
        assert (await acall(emu.control_url, "POST", "/__mock__/scenarios/dial", dial)).json == {
            "status": "ok",
            "tag": "t-1",
        }
        devices = [[{"type": "phone", "params": {"to_number": "+15553330000", "from_number": "+15552220000"}}]]
        call = await app.dial(devices, tag="t-1")
        assert call.call_id == "winner"
        journal = (await acall(emu.control_url, "GET", "/__mock__/journal")).json
        states = [
            (e["frame"]["params"]["params"]["call_id"], e["frame"]["params"]["params"]["call_state"])
            for e in journal
            if e["method"] == "signalwire.event"
            and e["direction"] == "send"
            and e["frame"]["params"]["event_type"] == "calling.call.state"
        ]
        assert states == [
            ("winner", "created"),
            ("winner", "ringing"),
            ("winner", "answered"),
            ("loser", "created"),
            ("loser", "ended"),
        ]

    scripted(body)


def test_inbound_call_reaches_on_call() -> None:
    async def body(emu: Emulator, apps: list[RelayClient]) -> None:
        calls = on_calls(apps[0])
        request = {"from_number": "+15551110000", "to_number": "+15552220000", "auto_states": ["created", "ringing"]}
        reply = (await acall(emu.control_url, "POST", "/__mock__/inbound_call", request)).json
        assert reply["states_emitted"] == ["created", "ringing"]
        call = await calls.get()
        assert call.call_id == reply["call_id"]
        ringing = await call.wait_for_ringing()
        assert ringing.params["call_state"] == "ringing"

    scripted(body)


def test_scenario_play_pushes_then_waits_for_the_apps_answer() -> None:
    async def body(emu: Emulator, apps: list[RelayClient]) -> None:
        app = apps[0]
        calls = on_calls(app)
        sid = session_of(app)

        async def answer_each() -> None:
            while True:
                await (await calls.get()).answer()

        answering = asyncio.ensure_future(answer_each())
        steps = [
            {"push": {"frame": receive_frame("c3"), "session_id": sid}},
            {"expect_recv": {"method": "calling.answer", "session_id": sid, "timeout_ms": 5000}},
            {"sleep_ms": 10},
        ]
        reply = await acall(emu.control_url, "POST", "/__mock__/scenario_play", steps)
        assert (reply.status, reply.json) == (200, {"status": "completed", "steps": 3})
        steps = [
            {"push": {"frame": receive_frame("c4", "push-2")}},
            {"expect_recv": {"method": "calling.end", "timeout_ms": 200}},
        ]
        reply = await acall(emu.control_url, "POST", "/__mock__/scenario_play", steps)
        assert reply.json == {"status": "timeout", "at_step": 1, "expected_method": "calling.end", "steps_completed": 1}
        answering.cancel()

    scripted(body)


def test_journal_is_scoped_by_session_and_reset_and_sessions_and_health_list_both_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signalwire.relay.client, "_MAX_CONNECTIONS", 2)  # RELAY_MAX_CONNECTIONS, read at import

    async def body(emu: Emulator, apps: list[RelayClient]) -> None:
        a, b = (session_of(app) for app in apps)
        url = emu.control_url
        health = (await acall(url, "GET", "/__mock__/health")).json
        assert (health["status"], health["sessions"], health["mode"]) == ("ok", 2, "scripted")
        sessions = (await acall(url, "GET", "/__mock__/sessions")).json["sessions"]
        assert [s["id"] for s in sessions] == [a, b]
        journal_a = (await acall(url, "GET", f"/__mock__/journal?session_id={a}")).json
        assert journal_a[0]["method"] == "signalwire.connect"
        assert journal_a[0]["direction"] == "recv"
        assert {e["session_id"] for e in journal_a} == {a}
        assert {e["connection_id"] for e in journal_a} == {sessions[0]["connection_id"]}
        assert (await acall(url, "POST", "/__mock__/journal/reset")).json == {"status": "ok"}
        await apps[1].execute("calling.answer", {"node_id": "n", "call_id": "x"})
        assert (await acall(url, "GET", f"/__mock__/journal?session_id={a}")).json == []
        journal_b = (await acall(url, "GET", f"/__mock__/journal?session_id={b}")).json
        assert [(e["direction"], e["method"]) for e in journal_b] == [
            ("recv", "calling.answer"),
            ("send", "calling.answer"),
        ]

    scripted(body, clients=2)
