"""The phone menu played a session it made before, as ``relay serve --playback FILE`` plays one.

The first half of each test records a session: the app takes a call (the caller presses a wrong key and leaves a
voicemail) and a text message against ``relay_server``, and the test writes the fixture's journal as a two-way
recording, the format of ``relay serve --record`` and ``relay proxy --record`` (one test records it through the
proxy itself). The second half plays that recording to the app again, and compares what the app asked and what it
was sent, ids aside. The same check works on a session recorded from production through ``relay proxy --record``.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from typing import Any

import app
import orjson
import pytest

from relay_cli.certs import LocalCA
from relay_cli.emulator import Emulator
from relay_cli.emulator.control import journal_entries
from relay_cli.emulator.playback import Playback, Recording
from relay_cli.pipeline.reader import Source, recorded_frames
from relay_cli.pipeline.recording import FrameRecorder
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, ConnectionNumbers, redact
from relay_cli.proxy import Proxy
from relay_cli.run import load_playback
from relay_cli.testing import RelayServer

IVR = "+15550001000"
CALLER = "+15557654321"
PLAYBACK_SPEED = 2.0
"""The recorded session's delays, halved."""
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,}")


async def call_and_text(relay_server: RelayServer) -> None:
    """The session recorded: the app takes a call (a wrong key, then a voicemail) and answers a text."""
    client = app.create_client()
    await client.connect()
    try:
        call = relay_server.call(to=IVR, from_=CALLER, press="7", say="Please call me back")
        await call.ended()
        await asyncio.sleep(0.5)  # the text comes well after the call, in the recording and in its playback
        reply = await relay_server.message(to=IVR, from_=CALLER, body="Are you open?").replied()
        await reply.ended()
    finally:
        await client.disconnect()


def record(relay_server: RelayServer, path: Path) -> list[dict[str, Any]]:
    """A call and a text message, as the app handles them; the journal written to ``path`` as a two-way
    recording, and returned."""

    async def session() -> None:
        await call_and_text(relay_server)

    asyncio.run(asyncio.wait_for(session(), 30))
    journal = list(relay_server.journal())
    recorder, numbers = FrameRecorder(str(path)), ConnectionNumbers()
    for entry in journal:
        if isinstance(entry["frame"], dict):
            direction = APP_TO_RELAY if entry["direction"] == "recv" else RELAY_TO_APP
            recorder.write(direction, entry["timestamp"], numbers(entry["connection_id"]), orjson.dumps(entry["frame"]))
    recorder.close()
    return journal


def load(path: Path) -> Recording:
    """The recording, read as ``relay serve --playback`` reads it."""

    def problem(at: str, message: str) -> None:
        raise AssertionError(f"{at}: {message}")

    return load_playback(str(path), problem)


def play(
    relay_server: RelayServer, path: Path, monkeypatch: pytest.MonkeyPatch, misses: int = 0
) -> tuple[Playback, list[Any]]:
    """Play the recording to the app (over wss://, with the fixture's CA) until the reply's last state, or until
    ``misses`` requests found no match."""
    emulator = Emulator(ssl=relay_server.tls.context, mode="app", speed=PLAYBACK_SPEED, playback=load(path))
    playback = emulator.playback
    assert playback is not None

    def done() -> bool:
        if misses:
            return len(playback.unmatched) >= misses
        return any(_is_last_state(e) for e in journal_entries(emulator.core))

    async def session() -> None:
        asyncio.get_running_loop().set_exception_handler(quiet_unread_actions)
        async with emulator:
            monkeypatch.setenv("SIGNALWIRE_SPACE", emulator.url.removeprefix("wss://"))
            client = app.create_client()
            await client.connect()
            try:
                while not done():
                    await asyncio.sleep(0.05)
            finally:
                await client.disconnect()

    asyncio.run(asyncio.wait_for(session(), 30))
    return playback, journal_entries(emulator.core)


def test_a_recorded_session_played_back_to_the_app_brings_the_same_conversation(
    relay_server: RelayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "session.jsonl"
    recorded = record(relay_server, path)
    playback, played = play(relay_server, path, monkeypatch)
    assert playback.summary() == (
        "playback: 8 of 8 request(s) matched the recording, 0 recorded request(s) never asked"
    )
    assert not playback.diverged
    for part in ("requests", "results", "events"):
        assert conversation(played, part) == conversation(recorded, part), part


def record_through_the_proxy(
    relay_server: RelayServer, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The same session with ``relay proxy --record``'s parts between the app and the server: the app trusts the
    proxy's local CA, the proxy trusts the server's; what the proxy recorded comes back as journal entries."""

    async def session() -> None:
        ca = LocalCA(tmp_path / "ca")
        recorder = FrameRecorder(str(path))
        proxy = Proxy(
            f"wss://{relay_server.host}",
            port=0,
            ssl=ca.server_context(["127.0.0.1"]),
            upstream_ssl=ssl.create_default_context(cafile=str(relay_server.ca_file)),
            on_frame=recorder.write,
        )
        async with proxy:
            monkeypatch.setenv("SIGNALWIRE_SPACE", proxy.url.removeprefix("wss://"))
            monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(ca.cert_path))
            await call_and_text(relay_server)
        recorder.close()

    asyncio.run(asyncio.wait_for(session(), 30))
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(relay_server.ca_file))
    entries = []
    for _, held in recorded_frames(Source(str(path))):
        assert isinstance(held, tuple), held
        direction, _, _, raw, _ = held
        frame = orjson.loads(raw)
        entries.append(
            {
                "direction": "recv" if direction == APP_TO_RELAY else "send",
                "method": frame.get("method"),
                "frame": frame,
            }
        )
    return entries


def test_a_session_recorded_through_the_proxy_played_back_brings_the_same_conversation(
    relay_server: RelayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "proxied.jsonl"
    recorded = record_through_the_proxy(relay_server, path, tmp_path, monkeypatch)
    playback, played = play(relay_server, path, monkeypatch)
    assert playback.summary() == (
        "playback: 8 of 8 request(s) matched the recording, 0 recorded request(s) never asked"
    )
    for part in ("requests", "results", "events"):
        assert conversation(played, part) == conversation(recorded, part), part


def test_a_changed_prompt_is_caught_by_the_recorded_session(
    relay_server: RelayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "session.jsonl"
    record(relay_server, path)
    monkeypatch.setattr(app, "GOODBYE", "Bye now!")
    monkeypatch.setattr(app, "SMS_REPLY", "We are open.")
    playback, _ = play(relay_server, path, monkeypatch, misses=2)
    assert [(m.method, m.param) for m in playback.unmatched] == [
        ("calling.play", "params.play[0].params.text"),
        ("messaging.send", "params.body"),
    ]
    assert playback.diverged


def conversation(journal: list[dict[str, Any]], part: str) -> list[Any]:
    """The app's requests, or the server's results, or its events, in order (pings and ACKs left out), each id
    (request ids, call, control and message ids, the session's) replaced by its order of first appearance among
    them, timestamps left out. The three are compared apart: an event and a result sent at nearly the same moment
    (a call's ``ringing`` and the app's ``answer``) cross in either order, in a recording as in its playback."""
    names: dict[str, str] = {}

    def normal(value: Any) -> Any:
        value = redact(value)  # a proxy's recording keeps no secret; a journal does
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items() if k != "timestamp"}
        if isinstance(value, list):
            return [normal(v) for v in value]
        if isinstance(value, str):
            return _ID.sub(lambda m: names.setdefault(m.group(), f"<id {len(names)}>"), value)
        return value

    kept = []
    for entry in journal:
        frame = entry["frame"]
        if entry["method"] == "signalwire.ping" or not isinstance(frame, dict):
            continue
        if entry["direction"] == "recv":
            which = "requests" if "method" in frame else "acks"
        else:
            which = "events" if frame.get("method") == "signalwire.event" else "results"
        if which == part:
            kept.append(normal(frame))
    return kept


def quiet_unread_actions(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The SDK leaves the action of a refused verb unread; the warning it logs when that is collected (a
    traceback, whenever the garbage collector runs) tells a test of a changed prompt nothing new."""
    if context.get("message") != "Future exception was never retrieved":
        loop.default_exception_handler(context)


def _is_last_state(entry: dict[str, Any]) -> bool:
    frame = entry["frame"]
    params = frame.get("params", {}) if isinstance(frame, dict) else {}
    return bool(params.get("event_type") == "messaging.state" and params["params"].get("message_state") == "delivered")
