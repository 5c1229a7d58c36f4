"""Messaging: ``messaging.send`` and inbound messages, sans-I/O on the core and with SignalWire's SDK as the app.

The SDK runs unmodified over real TLS loopback sockets: ``send_message`` then ``Message.wait()`` must end in the
state the far end's script says, with no timeout but the generous outer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import pytest
from controlplane import acall
from signalwire.relay.client import RelayClient, RelayError
from signalwire.relay.message import Message
from tls import certificate, server_context

from relay_cli.emulator import Emulator
from relay_cli.emulator.farends import FarEnd, FarEnds
from relay_cli.emulator.messages import FIRST_STATE_DELAY
from relay_cli.emulator.sessions import EmulatorCore, Mode, Peer
from relay_cli.protocol import connect_params, request

OWN = "+15550001111"
FRIEND = "+15550002222"
GONE = "+15550003333"


class Wire(Peer):
    """A peer that keeps what the core writes to it."""

    def __init__(self) -> None:
        super().__init__("test")
        self.frames: list[dict[str, Any]] = []

    def write(self, frames: Sequence[bytes]) -> None:
        self.frames.extend(orjson.loads(f) for f in frames)

    def states(self) -> list[tuple[str, str | None]]:
        return [
            (f["params"]["params"]["message_state"], f["params"]["params"].get("reason"))
            for f in self.frames
            if f.get("method") == "signalwire.event" and f["params"]["event_type"] == "messaging.state"
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connected(mode: Mode = "app", contexts: Sequence[str] = ("office",)) -> tuple[EmulatorCore, Wire, Clock]:
    clock = Clock()
    core = EmulatorCore(mode=mode, clock=clock, wall=clock)
    wire = Wire()
    outcome = core.connect(
        wire, request("signalwire.connect", connect_params(project="p", token="t", contexts=contexts))
    )
    assert outcome.session is not None
    return core, wire, clock


def send(core: EmulatorCore, wire: Wire, **params: Any) -> dict[str, Any]:
    reply = core.receive(wire, orjson.dumps(request("messaging.send", params, "m1")))
    assert reply is not None
    return dict(orjson.loads(reply))


def run_timers(core: EmulatorCore, clock: Clock, seconds: float) -> None:
    for _ in range(int(seconds * 100)):
        clock.now += 0.01
        core.tick()


MESSAGE = {"context": "office", "to_number": FRIEND, "from_number": OWN, "body": "hello"}


def test_send_is_accepted_with_a_message_id_and_walks_queued_to_delivered() -> None:
    core, wire, clock = connected()
    reply = send(core, wire, **MESSAGE)
    result = reply["result"]
    assert (result["code"], result["message"]) == ("200", "Message accepted")
    assert len(result["message_id"]) == 36
    run_timers(core, clock, FIRST_STATE_DELAY / 2)
    assert wire.states() == []  # the SDK tracks the message only once the result reached it
    run_timers(core, clock, 5)
    assert wire.states() == [("queued", None), ("initiated", None), ("sent", None), ("delivered", None)]
    event = next(f for f in wire.frames if f.get("method") == "signalwire.event" and "message_id" in str(f))
    params = event["params"]["params"]
    assert params["message_id"] == result["message_id"]
    assert (params["direction"], params["from_number"], params["to_number"]) == ("outbound", OWN, FRIEND)
    assert (params["body"], params["segments"], params["media"], params["tags"]) == ("hello", 1, [], [])
    assert event["params"]["context"] == "office"
    status = core.messages.status(result["message_id"])
    assert status is not None
    assert (status["state"], status["reason"], status["direction"]) == ("delivered", None, "outbound")


def test_the_far_end_script_decides_undelivered_and_failed_with_a_reason() -> None:
    core, wire, clock = connected()
    core.far_ends = FarEnds(numbers={GONE: FarEnd(message="undelivered"), FRIEND: FarEnd(message="failed")})
    send(core, wire, **{**MESSAGE, "to_number": GONE})
    run_timers(core, clock, 10)
    assert wire.states()[-1] == ("undelivered", "Unreachable destination")
    wire.frames.clear()
    send(core, wire, **MESSAGE)
    run_timers(core, clock, 10)
    assert wire.states() == [("queued", None), ("initiated", None), ("failed", "Carrier rejected")]


def test_scripted_mode_answers_send_with_the_result_only() -> None:
    core, wire, clock = connected("scripted")
    assert send(core, wire, **MESSAGE)["result"]["message"] == "Message accepted"
    run_timers(core, clock, 10)
    assert wire.states() == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**MESSAGE, "context": ""}, "Invalid params: context must be a non-empty string"),
        (
            {k: v for k, v in MESSAGE.items() if k != "to_number"},
            "Invalid params: to_number must be a non-empty string",
        ),
        ({**MESSAGE, "from_number": 5}, "Invalid params: from_number must be a non-empty string"),
        ({**MESSAGE, "body": None}, "Invalid params: body or media is required"),
        ({**MESSAGE, "media": "x.jpg"}, "Invalid params: media must be a list of URL strings"),
        ({**MESSAGE, "tags": [1]}, "Invalid params: tags must be a list of strings"),
    ],
)
def test_send_without_what_it_needs_is_32602_naming_the_field(params: dict[str, Any], message: str) -> None:
    core, wire, _ = connected()
    reply = send(core, wire, **params)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["message"] == message


def test_media_alone_is_enough() -> None:
    core, wire, _ = connected()
    reply = send(core, wire, **{**MESSAGE, "body": None, "media": ["https://example.com/a.jpg"]})
    assert reply["result"]["code"] == "200"


def test_inbound_messages_go_to_one_session_on_the_context_in_turn() -> None:
    core, first, _ = connected()
    second = Wire()
    core.connect(second, request("signalwire.connect", connect_params(project="p", token="t", contexts=["office"])))
    ids = [
        core.messages.start_inbound(context="office", from_number=FRIEND, to_number=OWN, body=f"n{i}") for i in range(4)
    ]

    def got(wire: Wire) -> list[str]:
        return [
            f["params"]["params"]["body"]
            for f in wire.frames
            if f.get("method") == "signalwire.event" and f["params"]["event_type"] == "messaging.receive"
        ]

    assert (got(first), got(second)) == (["n0", "n2"], ["n1", "n3"])
    status = core.messages.status(ids[1])
    assert status is not None
    assert (status["state"], status["direction"], status["body"]) == ("received", "inbound", "n1")
    assert second.session is not None
    assert status["session_id"] == second.session.sessionid
    lonely = core.messages.start_inbound(context="nobody", from_number=FRIEND, to_number=OWN, body="x")
    nobody = core.messages.status(lonely)
    assert nobody is not None
    assert nobody["session_id"] is None
    with pytest.raises(LookupError, match="no such session"):
        core.messages.start_inbound(context="office", from_number=FRIEND, to_number=OWN, body="x", session_id="nope")


# -- the SDK as the app --------------------------------------------------------------------------------------------


async def with_sdk(body: Callable[[Emulator, RelayClient], Awaitable[None]]) -> None:
    async with Emulator(mode="app", speed=100, ssl=server_context(), ping_interval=0, control_port=0) as emu:
        port = emu.url.rsplit(":", 1)[1]
        client = RelayClient(project="proj", token="secret-token", host=f"127.0.0.1:{port}", contexts=["office"])
        await client.connect()
        try:
            async with asyncio.timeout(20):
                await body(emu, client)
        finally:
            await client.disconnect()


def test_sdk_send_message_is_delivered_and_one_to_an_unreachable_number_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(certificate()[0]))

    async def body(emu: Emulator, client: RelayClient) -> None:
        rule = {"numbers": {GONE: {"message": "undelivered"}}}
        assert (await acall(emu.control_url, "PUT", "/relay/far_ends", rule)).status == 200
        seen: list[str] = []
        message = await client.send_message(to_number=FRIEND, from_number=OWN, body="hello", context="office")
        message.on(lambda event: seen.append(event.params["message_state"]))
        event = await message.wait()
        assert (message.state, event.params["message_state"]) == ("delivered", "delivered")
        assert seen == ["queued", "initiated", "sent", "delivered"]
        lost = await client.send_message(to_number=GONE, from_number=OWN, body="anyone?")
        await lost.wait()
        assert (lost.state, lost.reason) == ("undelivered", "Unreachable destination")
        status = (await acall(emu.control_url, "GET", f"/relay/messages/{lost.message_id}")).json
        assert (status["state"], status["reason"]) == ("undelivered", "Unreachable destination")

    asyncio.run(with_sdk(body))


def test_sdk_send_message_to_an_empty_number_gets_the_emulators_32602(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(certificate()[0]))

    async def body(emu: Emulator, client: RelayClient) -> None:
        with pytest.raises(RelayError, match="to_number must be a non-empty string"):
            await client.send_message(to_number="", from_number=OWN, body="x")

    asyncio.run(with_sdk(body))


def test_an_inbound_message_from_the_control_plane_reaches_on_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(certificate()[0]))

    async def body(emu: Emulator, client: RelayClient) -> None:
        arrived: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        @client.on_message
        async def on_message(message: Message) -> None:
            arrived.set_result(message)

        inbound = {"to_number": OWN, "from_number": FRIEND, "body": "knock knock", "context": "office"}
        created = await acall(emu.control_url, "POST", "/relay/messages", inbound)
        assert created.status == 201
        message = await arrived
        assert message.message_id == created.json["message_id"]
        assert (message.body, message.from_number, message.to_number) == ("knock knock", FRIEND, OWN)
        assert (message.direction, message.state, message.context) == ("inbound", "received", "office")

    asyncio.run(with_sdk(body))
