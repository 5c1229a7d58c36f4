"""SignalWire's own SDK as the app, unmodified, through the proxy to the emulator: the proxy must be invisible.

The app dials the proxy over TLS with a certificate from relay's local CA (as ``relay proxy`` serves it), trusting
that CA through ``SIGNALWIRE_RELAY_CA_FILE``; the proxy dials the emulator over plain loopback ``ws://``. What the
app sent must be what the emulator received, byte for byte and in order, and the other way round; drops on either
side must reach the other so the SDK's own reconnect and resume run as they would against RELAY itself.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from signalwire.relay.call import Call
from signalwire.relay.client import RelayClient

from relay_cli.certs import LocalCA
from relay_cli.emulator import Emulator
from relay_cli.emulator.farends import FarEnd
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, ConnectionNumbers, FrameRecord, Kind
from relay_cli.proxy import Link, Proxy

T = TypeVar("T")
SPEED = 50.0
OWN = "+15550001111"
AGENT = "+15550002222"
TOKEN = "secret-token-0123456789"


@pytest.fixture
def tls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ssl.SSLContext:
    """The proxy's TLS context, from a local CA the SDK is told to trust (as ``relay proxy`` prints it)."""
    ca = LocalCA(tmp_path / "ca")
    ca.ensure()
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(ca.cert_path))
    return ca.server_context(["127.0.0.1"])


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Drops and reconnects are normal ends: neither websockets nor asyncio may log them as errors."""
    caplog.set_level(logging.WARNING)
    yield
    problems = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(("websockets", "asyncio"))
    ]
    assert not problems, [f"{r.name}: {r.getMessage()}" for r in problems]


def run(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


class Seen:
    """What the proxy and the emulator saw, and an event set whenever either saw something more."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bytes]] = []
        self.links: list[Link] = []
        self.logs: list[str] = []
        self.detached: list[bool] = []
        """At each "disconnected" the emulator logged: whether every session it holds is waiting for a resume."""
        self.emu: Emulator | None = None
        self.changed = asyncio.Event()

    def on_frame(self, direction: str, at: float, connection: int, data: bytes, text: bool) -> None:
        assert text
        self.frames.append((direction, connection, data))
        self.changed.set()

    def on_link(self, link: Link) -> None:
        self.links.append(link)
        self.changed.set()

    def log(self, line: str) -> None:
        self.logs.append(line)
        if line.endswith(" disconnected") and self.emu is not None:
            self.detached.append(all(s.conn is None for s in self.emu._sessions.values()))
        self.changed.set()

    def journal(self, emu: Emulator) -> list[tuple[str, int, bytes]]:
        """The emulator's journal as the proxy numbers connections: 1, 2... in the order they first spoke."""
        numbers = ConnectionNumbers()
        return [(r.direction, numbers(r.connection), r.raw) for r in emu.journal.records()]

    async def until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            self.changed.clear()
            await self.changed.wait()

    def link(self, what: str, connection: int) -> Link | None:
        return next((k for k in self.links if k.what == what and k.connection == connection), None)


async def through_proxy(tls: ssl.SSLContext, body: Callable[[Emulator, Proxy, Seen], Awaitable[T]]) -> T:
    seen = Seen()
    async with (
        Emulator(mode="app", speed=SPEED, ping_interval=0, log=seen.log) as emu,
        Proxy(emu.url, port=0, ssl=tls, on_frame=seen.on_frame, on_link=seen.on_link) as proxy,
    ):
        seen.emu = emu
        emu.journal.observers.append(lambda *_: seen.changed.set())
        return await body(emu, proxy, seen)


def client_for(proxy: Proxy) -> RelayClient:
    return RelayClient(project="proj", token=TOKEN, host=f"127.0.0.1:{proxy.port}", contexts=["default"])


def connects(emu: Emulator) -> list[tuple[FrameRecord, FrameRecord]]:
    """Each ``signalwire.connect`` the emulator received, with its answer."""
    records = list(emu.journal.records())
    pairs = []
    for request in records:
        if request.direction == APP_TO_RELAY and request.kind is Kind.CONNECT:
            answer = next(
                r
                for r in records
                if r.direction == RELAY_TO_APP and r.kind is Kind.RESULT and r.value["id"] == request.value["id"]
            )
            pairs.append((request, answer))
    return pairs


def tts(text: str) -> list[dict[str, Any]]:
    return [{"type": "tts", "params": {"text": text}}]


def test_an_sdk_ivr_works_unchanged_through_the_proxy_and_both_ends_see_the_same_bytes(tls: ssl.SSLContext) -> None:
    seen_by_app: dict[str, Any] = {}

    async def body(emu: Emulator, proxy: Proxy, seen: Seen) -> None:
        done = asyncio.get_running_loop().create_future()

        async def ivr(call: Call) -> None:
            try:
                await call.answer()
                welcome = await call.play_tts("Welcome, through the proxy.")
                seen_by_app["welcome"] = (await welcome.wait()).params["state"]
                collect = await call.play_and_collect(
                    tts("Your PIN, then pound."), {"digits": {"max": 8, "terminators": "#"}}
                )
                seen_by_app["collected"] = (await collect.wait()).params["result"]
                recording = await call.record({"end_silence_timeout": 1})
                seen_by_app["recorded"] = (await recording.wait()).params["state"]
                await call.connect([[{"type": "phone", "params": {"to_number": AGENT, "from_number": OWN}}]])
                connected = await call.wait_for(
                    "calling.call.connect", lambda e: e.params["connect_state"] == "connected"
                )
                seen_by_app["agent"] = connected.params["peer"]["device"]["params"]["to_number"]
                await call.hangup()
                seen_by_app["ended"] = (await call.wait_for_ended()).params["end_reason"]
                done.set_result(None)
            except Exception as exc:  # the test fails with what went wrong, not a timeout
                done.set_exception(exc)

        client = client_for(proxy)
        await client.connect()
        try:
            client.on_call(ivr)
            emu.core.calls.start_inbound(
                context="default", from_number="+15557770000", to_number=OWN, caller=FarEnd(press="4321#", say="hi")
            )
            await done
            # Every frame either side sent reaches the other: wait until the two views have the same length.
            await seen.until(lambda: len(seen.journal(emu)) == len(seen.frames))
            journal = seen.journal(emu)
            for direction in (APP_TO_RELAY, RELAY_TO_APP):
                assert [f for f in seen.frames if f[0] == direction] == [f for f in journal if f[0] == direction]
            assert len(journal) > 40 and {c for _, c, _ in journal} == {1}
            [(request, _)] = connects(emu)
            assert request.value["params"]["authentication"] == {"project": "proj", "token": TOKEN}
            assert (
                TOKEN.encode() in seen.frames[0][2] and seen.frames[0][2] == request.raw
            )  # intact, as the app sent it
        finally:
            await client.disconnect()
        await seen.until(lambda: seen.link("closed", 1) is not None)
        closed = seen.link("closed", 1)
        assert closed is not None and (closed.detail, closed.code) == ("by the app", 1000)

    run(lambda: through_proxy(tls, body))
    assert seen_by_app == {
        "welcome": "finished",
        "collected": {"type": "digit", "params": {"digits": "4321", "terminator": "#"}},
        "recorded": "finished",
        "agent": AGENT,
        "ended": "hangup",
    }


async def reconnecting(emu: Emulator, proxy: Proxy, seen: Seen, cut: Callable[[RelayClient], Awaitable[None]]) -> str:
    """Run the SDK's own connect-and-reconnect loop; ``cut`` the first connection; return how the proxy saw it end
    once the SDK is connected again, through the proxy, and check that it resumed its session."""
    client = client_for(proxy)
    task = asyncio.create_task(client._run_forever())
    try:
        await client.execute("signalwire.ping", {"timestamp": 0.0})  # answered once the SDK is connected
        await cut(client)
        await emu.wait_for_connections(2, timeout=15)
        await client.execute("signalwire.ping", {"timestamp": 0.0})  # answered after the SDK has its connect result
        assert seen.link("open", 2) is not None
        (_, first_answer), (second, second_answer) = connects(emu)
        protocol = first_answer.value["result"]["protocol"]
        assert second.value["params"]["protocol"] == protocol
        assert second_answer.value["result"]["session_restored"] is True
        assert client.relay_protocol == protocol
    finally:
        await client._shutdown()
        await task
    closed = seen.link("closed", 1)
    assert closed is not None
    return closed.detail


def test_an_upstream_that_drops_drops_the_sdk_which_reconnects_through_the_proxy_and_resumes(
    tls: ssl.SSLContext,
) -> None:
    async def body(emu: Emulator, proxy: Proxy, seen: Seen) -> str:
        return await reconnecting(emu, proxy, seen, lambda _: emu.drop())

    assert run(lambda: through_proxy(tls, body)) == "dropped by RELAY"


def test_an_sdk_that_drops_has_the_emulator_see_the_end_keep_the_session_and_resume_it(tls: ssl.SSLContext) -> None:
    async def body(emu: Emulator, proxy: Proxy, seen: Seen) -> tuple[str, list[bool]]:
        async def drop_the_app(client: RelayClient) -> None:
            assert client._ws is not None
            client._ws.transport.abort()  # the app's network fails: no close frame
            await seen.until(lambda: bool(seen.detached))

        return await reconnecting(emu, proxy, seen, drop_the_app), seen.detached

    detail, detached = run(lambda: through_proxy(tls, body))
    assert detail == "dropped by the app"
    assert detached[0] is True  # the emulator saw the socket end while the session waited to be resumed
