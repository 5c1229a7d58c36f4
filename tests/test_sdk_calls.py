"""SignalWire's own SDK as the app, unmodified, against the emulator over real TLS loopback sockets.

Each test runs a whole call flow the way an app would write it: nothing here waits with a timeout the SDK itself
would not need, so a verb that got no event, or the wrong one, shows up as the generous outer timeout failing.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
from signalwire.relay.call import Call
from signalwire.relay.client import RelayClient, RelayError
from signalwire.relay.event import RelayEvent
from tls import certificate, server_context

from relay_cli.emulator import Emulator
from relay_cli.emulator.farends import FarEnd, FarEnds

T = TypeVar("T")
SPEED = 50.0
OWN = "+15550001111"
BUSY = "+15550009999"
AGENT = "+15550002222"


@pytest.fixture
def tls(monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """The server's TLS context; the SDK is told to trust the certificate through SIGNALWIRE_RELAY_CA_FILE."""
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(certificate()[0]))
    return server_context()


def run(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


async def with_app(
    tls: ssl.SSLContext, body: Callable[[Emulator, RelayClient], Awaitable[T]], far_ends: FarEnds | None = None
) -> T:
    """Run ``body`` with an emulator in app mode and a connected SDK client on context ``default``."""
    async with Emulator(mode="app", speed=SPEED, ssl=tls, ping_interval=0) as emu:
        if far_ends is not None:
            emu.core.far_ends = far_ends
        port = emu.url.rsplit(":", 1)[1]
        client = RelayClient(project="proj", token="secret-token", host=f"127.0.0.1:{port}", contexts=["default"])
        await client.connect()
        try:
            return await body(emu, client)
        finally:
            await client.disconnect()


def tts(text: str) -> list[dict[str, Any]]:
    return [{"type": "tts", "params": {"text": text}}]


def phone(number: str) -> dict[str, Any]:
    return {"type": "phone", "params": {"to_number": number, "from_number": OWN}}


def test_an_ivr_answers_plays_collects_digits_records_connects_an_agent_and_hangs_up(tls: ssl.SSLContext) -> None:
    seen: dict[str, Any] = {}
    done: asyncio.Future[None]

    async def ivr(call: Call) -> None:
        try:
            await call.answer()
            welcome = await call.play_tts("Welcome to the emulated help line.")
            seen["welcome"] = (await welcome.wait()).params["state"]
            prompt = tts("Enter your account number, then press pound.")
            collect = await call.play_and_collect(prompt, {"digits": {"max": 8, "terminators": "#"}})
            seen["collected"] = (await collect.wait()).params["result"]
            recording = await call.record({"end_silence_timeout": 1})
            seen["recorded"] = (await recording.wait()).params
            await call.connect([[phone(AGENT)]])
            connected = await call.wait_for("calling.call.connect", lambda e: e.params["connect_state"] == "connected")
            seen["agent"] = connected.params["peer"]["device"]["params"]["to_number"]
            await call.hangup()
            seen["ended"] = (await call.wait_for_ended()).params["end_reason"]
            done.set_result(None)
        except Exception as exc:  # the test fails with what went wrong, not a timeout
            done.set_exception(exc)

    async def body(emu: Emulator, client: RelayClient) -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        client.on_call(ivr)
        caller = FarEnd(press="4321#", say="My order never arrived")
        call_id = emu.core.calls.start_inbound(
            context="default", from_number="+15557770000", to_number=OWN, caller=caller
        )
        await done
        status = emu.core.calls.status(call_id)
        assert status is not None and status["answered"] and status["end_reason"] == "hangup"
        recording_id = seen["recorded"]["url"].rsplit("/", 1)[1].removesuffix(".wav")
        assert emu.core.calls.recording(recording_id) == seen["recorded"]["duration"]

    run(lambda: with_app(tls, body))
    assert seen["welcome"] == "finished"
    assert seen["collected"] == {"type": "digit", "params": {"digits": "4321", "terminator": "#"}}
    assert seen["recorded"]["state"] == "finished" and seen["recorded"]["duration"] > 1
    assert seen["recorded"]["url"].endswith(".wav")
    assert seen["agent"] == AGENT
    assert seen["ended"] == "hangup"


def test_a_fax_received_from_a_fax_machine_has_a_document_the_app_can_download(tls: ssl.SSLContext) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with Emulator(mode="app", speed=SPEED, ssl=tls, ping_interval=0, control_port=0) as emu:
            port = emu.url.rsplit(":", 1)[1]
            client = RelayClient(project="proj", token="secret-token", host=f"127.0.0.1:{port}", contexts=["default"])
            done = asyncio.get_running_loop().create_future()

            async def app(call: Call) -> None:
                try:
                    await call.answer()
                    fax = await call.receive_fax()
                    seen["fax"] = (await fax.wait()).params["fax"]
                    await call.hangup()
                    done.set_result(None)
                except Exception as exc:
                    done.set_exception(exc)

            await client.connect()
            try:
                client.on_call(app)
                emu.core.calls.start_inbound(
                    context="default", from_number="+15557770000", to_number=OWN, caller=FarEnd(fax=True)
                )
                await done
            finally:
                await client.disconnect()
            document = seen["fax"]["params"]["document"]
            seen["download"] = await asyncio.to_thread(_get, document)
            seen["missing"] = await asyncio.to_thread(_get, f"{emu.control_url}/relay/faxes/nope.pdf")

    run(main)
    params = seen["fax"]["params"]
    assert seen["fax"]["type"] == "finished" and params["success"] is True and params["pages"] == 1
    assert params["document"].endswith(".pdf") and params["direction"] == "receive"
    status, kind, body = seen["download"]
    assert (status, kind) == (200, "application/pdf") and body.startswith(b"%PDF-1.4\n") and b"/Count 1" in body
    assert seen["missing"][:2] == (404, "application/json") and b"no such fax: nope" in seen["missing"][2]


def _get(url: str) -> tuple[int, str, bytes]:
    """A plain HTTP GET, as an app downloads a media URL: the status, the content type and the body."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a loopback URL the test made)
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


def test_a_dial_to_a_busy_number_raises_and_one_to_a_number_that_answers_returns_the_answered_call(
    tls: ssl.SSLContext,
) -> None:
    rules = FarEnds(numbers={BUSY: FarEnd(answer="busy", answer_after=0.5)})

    async def body(emu: Emulator, client: RelayClient) -> None:
        with pytest.raises(RelayError, match="Dial failed"):
            await client.dial([[phone(BUSY)]])

        busy = [(c["state"], c["end_reason"]) for c in emu.core.calls.calls() if c["to_number"] == BUSY]
        assert busy == [("ended", "busy")]  # the leg's end comes before the dial's failure

        call = await client.dial([[phone(BUSY), phone(AGENT)]])
        assert call.state == "answered" and call.device["params"]["to_number"] == AGENT
        await call.hangup()
        assert (await call.wait_for_ended()).params["end_reason"] == "hangup"

    run(lambda: with_app(tls, body, rules))


def test_a_play_paused_and_resumed_reports_each_state_and_finishes(tls: ssl.SSLContext) -> None:
    async def body(emu: Emulator, client: RelayClient) -> list[str]:
        call = await client.dial([[phone(AGENT)]])
        states: list[str] = []

        def note(event: RelayEvent) -> None:
            states.append(event.params["state"])

        call.on("calling.call.play", note)
        play = await call.play_tts("This message is long enough to be paused half way through. " * 3)
        await call.wait_for("calling.call.play", lambda e: e.params["state"] == "playing")
        await play.pause()
        await call.wait_for("calling.call.play", lambda e: e.params["state"] == "paused")
        await play.resume()
        finished = await play.wait()
        await call.hangup()
        await call.wait_for_ended()
        assert finished.params["state"] == "finished"
        return states

    assert run(lambda: with_app(tls, body)) == ["playing", "paused", "playing", "finished"]


def test_verbs_on_a_call_the_far_end_hung_up_return_at_once_as_call_gone(tls: ssl.SSLContext) -> None:
    rules = FarEnds(numbers={AGENT: FarEnd(hangup_after=0.5)})

    async def body(emu: Emulator, client: RelayClient) -> None:
        call = await client.dial([[phone(AGENT)]])
        assert (await call.wait_for_ended()).params["end_reason"] == "hangup"
        assert await call.answer() == {}  # the SDK's answer to a 410: the call is gone, not an error

    run(lambda: with_app(tls, body, rules))
