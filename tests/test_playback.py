"""Playback of a two-way recording (``relay serve --playback``): the matcher and id rewriting as plain calls on the
sans-I/O core, then SignalWire's SDK as the app over TLS loopback, played a session it made itself."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import interrupt, relay, spawn
from signalwire.relay.call import Call
from signalwire.relay.client import RelayClient, RelayError
from tls import certificate, server_context
from websockets.asyncio.client import connect as dial

from relay_cli.emulator import Emulator
from relay_cli.emulator.playback import NO_MATCH, Playback, PlaybackError, Recording, ignored_params
from relay_cli.emulator.sessions import EmulatorCore, Peer
from relay_cli.pipeline.recording import FrameRecorder, close_line, frame_line
from relay_cli.protocol import (
    APP_TO_RELAY,
    RELAY_TO_APP,
    ConnectionNumbers,
    RecordedClose,
    ack,
    connect_params,
    request,
)
from relay_cli.run import load_playback

CALL = "call-rec-1"
NODE = "node-rec-1"
T0 = 1_700_000_000.0


# -- building recordings ---------------------------------------------------------------------------------------


def connect(at: float = T0, conn: int = 1) -> tuple[str, float, dict[str, Any], int]:
    params = connect_params(project="p", token="t-secret", contexts=["default"])
    return APP_TO_RELAY, at, request("signalwire.connect", params, f"connect-{conn}"), conn


def asked(at: float, rid: str, method: str, conn: int = 1, **params: Any) -> tuple[str, float, dict[str, Any], int]:
    return APP_TO_RELAY, at, request(method, params, rid), conn


def answered(at: float, rid: str, conn: int = 1, **value: Any) -> tuple[str, float, dict[str, Any], int]:
    return RELAY_TO_APP, at, {"jsonrpc": "2.0", "id": rid, "result": {"code": "200", **value}}, conn


def event(at: float, event_type: str, conn: int = 1, **params: Any) -> tuple[str, float, dict[str, Any], int]:
    payload = {
        "event_type": event_type,
        "event_channel": "recorded-protocol",
        "space_id": "space-rec",
        "params": params,
    }
    return RELAY_TO_APP, at, request("signalwire.event", payload, f"ev-{at}"), conn


def recording(*frames: tuple[str, float, dict[str, Any], int]) -> Recording:
    return Recording.from_frames(
        "rec.jsonl", [(f"rec.jsonl:{i + 1}", d, t, c, orjson.dumps(f)) for i, (d, t, f, c) in enumerate(frames)]
    )


def receive(at: float, call_id: str = CALL) -> tuple[str, float, dict[str, Any], int]:
    return event(at, "calling.call.receive", call_id=call_id, node_id=NODE, call_state="created", context="default")


def answer_and_play(control_id: str = "ctl-rec-1") -> list[tuple[str, float, dict[str, Any], int]]:
    """A call comes in 1 s after connect; the app answers and plays; the play's events follow."""
    return [
        connect(),
        receive(T0 + 1.0),
        asked(T0 + 1.1, "r-1", "calling.answer", call_id=CALL, node_id=NODE),
        answered(T0 + 1.11, "r-1", call_id=CALL),
        event(T0 + 1.2, "calling.call.state", call_id=CALL, node_id=NODE, call_state="answered"),
        asked(T0 + 1.3, "r-2", "calling.play", call_id=CALL, node_id=NODE, control_id=control_id, play=[{"t": 1}]),
        answered(T0 + 1.31, "r-2", call_id=CALL, control_id=control_id),
        event(T0 + 1.4, "calling.call.play", call_id=CALL, node_id=NODE, control_id=control_id, state="playing"),
        event(T0 + 3.3, "calling.call.play", call_id=CALL, node_id=NODE, control_id=control_id, state="finished"),
    ]


# -- the sans-I/O core, driven by hand ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class App(Peer):
    """A connection that keeps what the core writes to it."""

    def __init__(self) -> None:
        super().__init__("app")
        self.frames: list[dict[str, Any]] = []

    def write(self, frames: Sequence[bytes]) -> None:
        self.frames.extend(orjson.loads(f) for f in frames)

    def events(self) -> list[dict[str, Any]]:
        return [f["params"] for f in self.frames if f.get("method") == "signalwire.event"]


class Harness:
    def __init__(self, rec: Recording, speed: float = 1.0) -> None:
        self.clock = Clock()
        self.log: list[str] = []
        self.core = EmulatorCore(mode="app", speed=speed, clock=self.clock, playback=rec, log=self.log.append)
        assert self.core.playback is not None
        self.playback: Playback = self.core.playback
        self.app = App()
        params = connect_params(project="p", token="t", contexts=["default"])
        self.core.connect(self.app, request("signalwire.connect", params, "c"))

    def ask(self, method: str, rid: str = "a-1", **params: Any) -> dict[str, Any] | None:
        reply = self.core.receive(self.app, orjson.dumps(request(method, params, rid)))
        return None if reply is None else orjson.loads(reply)

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass on the core's clock, a millisecond at a time."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now += 0.001
            self.core.tick()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.app.events() if event_type is None or e["event_type"] == event_type]


def test_a_request_gets_the_recorded_result_with_the_apps_ids_and_its_events_follow() -> None:
    h = Harness(recording(*answer_and_play()))
    h.run(1.05)
    [offer] = h.events("calling.call.receive")
    assert offer["params"]["call_id"] == CALL  # the server's ids are the recording's
    assert h.app.session is not None and offer["event_channel"] == h.app.session.protocol
    assert h.ask("calling.answer", "mine-1", call_id=CALL, node_id=NODE) == {
        "jsonrpc": "2.0",
        "id": "mine-1",
        "result": {"code": "200", "call_id": CALL},
    }
    reply = h.ask("calling.play", "mine-2", call_id=CALL, node_id=NODE, control_id="ctl-app", play=[{"t": 1}])
    assert reply == {
        "jsonrpc": "2.0",
        "id": "mine-2",
        "result": {"code": "200", "call_id": CALL, "control_id": "ctl-app"},
    }
    h.run(0.5)
    plays = h.events("calling.call.play")
    assert [(p["params"]["control_id"], p["params"]["state"]) for p in plays] == [("ctl-app", "playing")]
    h.run(2.0)
    assert [p["params"]["state"] for p in h.events("calling.call.play")] == ["playing", "finished"]
    assert h.playback.summary() == (
        "playback: 2 of 2 request(s) matched the recording, 0 recorded request(s) never asked"
    )
    assert not h.playback.diverged
    # Every event sent is tracked until the app ACKs it, as any event of the emulator's.
    session = h.app.session
    assert session is not None and len(session.unacked) == 4
    for frame in h.app.frames:
        if frame.get("method") == "signalwire.event":
            h.core.receive(h.app, orjson.dumps(ack(frame["id"])))
    assert not session.unacked


def _play_with(text: str, h: Harness) -> dict[str, Any] | None:
    tts = [{"type": "tts", "params": {"text": text}}]
    return h.ask("calling.play", "p-1", call_id=CALL, node_id=NODE, control_id="ctl-app", play=tts)


def _recorded_play(**extra: Any) -> Recording:
    tts = [{"type": "tts", "params": {"text": "Press 1 for sales"}}]
    return recording(
        connect(),
        asked(T0 + 1, "r-1", "calling.play", call_id=CALL, node_id=NODE, control_id="ctl-rec", play=tts, **extra),
        answered(T0 + 1, "r-1", call_id=CALL, control_id="ctl-rec"),
    )


@pytest.mark.parametrize("spec", ["text", "calling.play:text"])
def test_an_ignored_param_matches_whatever_it_holds_at_any_depth(spec: str) -> None:
    h = Harness(_recorded_play())
    h.playback.ignored = ignored_params([spec])
    reply = _play_with("Press 1 for sales, 2 for support", h)
    assert reply is not None and reply["result"]["control_id"] == "ctl-app"


def test_an_ignored_param_may_be_missing_or_extra_and_other_params_still_count() -> None:
    h = Harness(_recorded_play(volume=3))
    h.playback.ignored = ignored_params(["volume"])
    matched = _play_with("Press 1 for sales", h)  # recorded with a volume, asked without
    assert matched is not None and "result" in matched
    h = Harness(_recorded_play())
    h.playback.ignored = ignored_params(["volume"])
    reply = h.ask("calling.play", "p-1", call_id=CALL, node_id=NODE, control_id="c", volume=9, play=[{"t": 2}])
    assert reply is not None and reply["error"]["code"] == NO_MATCH  # play still compared
    assert reply["error"]["message"].endswith('params.play[0].type is missing, recorded "tts"')


def test_a_param_ignored_in_one_method_still_counts_in_another() -> None:
    h = Harness(_recorded_play())
    h.playback.ignored = ignored_params(["calling.record:text"])
    reply = _play_with("Something else", h)
    assert reply is not None and reply["error"]["code"] == NO_MATCH
    assert reply["error"]["data"]["param"] == "params.play[0].params.text"


@pytest.mark.parametrize("spec", ["", ":text", "calling.play:", "a:b:c", "my text"])
def test_an_ignore_spec_that_names_no_param_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="give a param name"):
        ignored_params([spec])


def test_an_inbound_call_starts_at_its_recorded_time_divided_by_speed() -> None:
    h = Harness(recording(*answer_and_play()), speed=4.0)
    h.run(0.2)
    assert h.events("calling.call.receive") == []
    h.run(0.1)  # 1 s recorded, a quarter of it at speed 4
    assert len(h.events("calling.call.receive")) == 1


def test_requests_asked_in_another_order_than_recorded_still_match() -> None:
    rec = recording(
        connect(),
        asked(T0 + 1, "r-1", "calling.play", call_id="a", control_id="ca"),
        answered(T0 + 1, "r-1", call_id="a", control_id="ca"),
        asked(T0 + 2, "r-2", "calling.play", call_id="b", control_id="cb"),
        answered(T0 + 2, "r-2", call_id="b", control_id="cb"),
        event(T0 + 2.5, "calling.call.play", call_id="a", control_id="ca", state="finished"),
        event(T0 + 2.6, "calling.call.play", call_id="b", control_id="cb", state="finished"),
    )
    h = Harness(rec)
    second = h.ask("calling.play", "x-1", call_id="b", control_id="mine-b")
    first = h.ask("calling.play", "x-2", call_id="a", control_id="mine-a")
    assert second is not None and second["result"]["control_id"] == "mine-b"
    assert first is not None and first["result"]["control_id"] == "mine-a"
    h.run(2.0)
    # Each event follows the request whose control_id it carries, with that request's recorded delay.
    finished = [(e["params"]["call_id"], e["params"]["control_id"]) for e in h.events("calling.call.play")]
    assert sorted(finished) == [("a", "mine-a"), ("b", "mine-b")]


def test_a_recorded_request_never_asked_is_counted_and_its_events_are_not_sent() -> None:
    h = Harness(recording(*answer_and_play()))
    h.ask("calling.answer", call_id=CALL, node_id=NODE)
    h.run(3.0)
    assert h.events("calling.call.play") == []
    assert [r.method for r in h.playback.unasked()] == ["calling.play"]
    assert h.playback.diverged
    assert h.playback.summary() == (
        "playback: 1 of 1 request(s) matched the recording, 1 recorded request(s) never asked"
        " (first: calling.play at rec.jsonl:6); 2 recorded event(s) that follow them not sent"
    )


def test_an_extra_request_gets_a_no_match_error_naming_the_method_and_why() -> None:
    h = Harness(recording(*answer_and_play()))
    h.ask("calling.answer", "a-1", call_id=CALL, node_id=NODE)
    again = h.ask("calling.answer", "a-2", call_id=CALL, node_id=NODE)
    assert again is not None
    assert again["id"] == "a-2"
    assert again["error"]["code"] == NO_MATCH
    message = "calling.answer: no recorded calling.answer request left (all 1 answered)"
    assert again["error"]["message"] == message
    assert again["error"]["data"]["signalwire_error_code"] == "PLAYBACK_NO_MATCH"
    assert again["error"]["data"]["reason"] == "none left"
    unknown = h.ask("calling.record", "a-3", call_id=CALL)
    assert unknown is not None
    assert unknown["error"]["message"] == "calling.record: the recording has no calling.record request"
    assert [m.reason for m in h.playback.unmatched] == ["none left", "no such method"]
    assert f"app: playback: {message}" in h.log
    # The error went out through the journal like any reply.
    errors = [r for r in h.core.journal.records() if r.direction == RELAY_TO_APP and b'"error"' in r.raw]
    assert len(errors) == 2


def test_different_params_get_an_error_naming_the_first_that_differs() -> None:
    h = Harness(recording(*answer_and_play()))
    h.ask("calling.answer", call_id=CALL, node_id=NODE)
    reply = h.ask("calling.play", "p-1", call_id=CALL, node_id=NODE, control_id="c", play=[{"t": 2}])
    assert reply is not None
    assert reply["error"]["message"] == (
        "calling.play: params differ from the next recorded calling.play (rec.jsonl:6): params.play[0].t is 2,"
        " recorded 1"
    )
    assert reply["error"]["data"]["param"] == "params.play[0].t"
    missing = h.ask("calling.play", "p-2", call_id=CALL, control_id="c", play=[{"t": 1}])
    assert missing is not None
    assert missing["error"]["data"]["param"] == "params.node_id"
    assert missing["error"]["message"].endswith('params.node_id is missing, recorded "node-rec-1"')
    extra = h.ask("calling.play", "p-3", call_id=CALL, node_id=NODE, control_id="c", play=[{"t": 1}], volume=3)
    assert extra is not None
    assert extra["error"]["message"].endswith("params.volume is 3, not in the recording")
    # A miss binds nothing: the right request still matches, with a control_id of its own.
    ok = h.ask("calling.play", "p-4", call_id=CALL, node_id=NODE, control_id="c-ok", play=[{"t": 1}])
    assert ok is not None and ok["result"]["control_id"] == "c-ok"


def test_an_id_the_app_picked_before_must_stand_for_the_same_recorded_id() -> None:
    rec = recording(
        connect(),
        asked(T0 + 1, "r-1", "calling.play", call_id=CALL, control_id="rec-p"),
        answered(T0 + 1, "r-1", call_id=CALL, control_id="rec-p"),
        asked(T0 + 2, "r-2", "calling.play.stop", call_id=CALL, control_id="rec-p"),
        answered(T0 + 2, "r-2", call_id=CALL, control_id="rec-p"),
        event(T0 + 2.1, "calling.call.play", call_id=CALL, control_id="rec-p", state="finished"),
    )
    h = Harness(rec)
    h.ask("calling.play", call_id=CALL, control_id="app-p")
    wrong = h.ask("calling.play.stop", "s-1", call_id=CALL, control_id="other")
    assert wrong is not None
    assert wrong["error"]["message"].endswith(
        'params.control_id is "other", recorded "rec-p", which this app calls "app-p"'
    )
    stop = h.ask("calling.play.stop", "s-2", call_id=CALL, control_id="app-p")
    assert stop is not None and stop["result"]["control_id"] == "app-p"
    h.run(0.5)
    assert [e["params"]["control_id"] for e in h.events("calling.call.play")] == ["app-p"]


def test_app_picked_ids_are_rewritten_wherever_they_sit_in_an_event() -> None:
    leg: dict[str, Any] = {"call_id": "leg-1", "node_id": NODE, "tag": "rec-tag", "device": {"type": "phone"}}
    rec = recording(
        connect(),
        asked(T0 + 1, "d-1", "calling.dial", tag="rec-tag", devices=[[{"type": "phone"}]]),
        answered(T0 + 1, "d-1"),
        event(T0 + 1.1, "calling.call.state", call_state="created", **leg),
        event(T0 + 1.3, "calling.call.dial", tag="rec-tag", node_id=NODE, dial_state="answered", call=leg),
        event(T0 + 9.0, "calling.call.state", call_state="ended", **leg),  # no request between: follows the dial
    )
    h = Harness(rec)
    h.ask("calling.dial", tag="app-tag", devices=[[{"type": "phone"}]])
    h.run(8.5)
    dial = h.events("calling.call.dial")
    assert [(d["params"]["tag"], d["params"]["call"]["tag"]) for d in dial] == [("app-tag", "app-tag")]
    assert [e["params"]["tag"] for e in h.events("calling.call.state")] == ["app-tag", "app-tag"]
    assert b"rec-tag" not in b"".join(orjson.dumps(f) for f in h.app.frames)


def test_a_recording_with_reconnects_plays_as_one_conversation() -> None:
    rec = recording(
        connect(),
        asked(T0 + 1, "r-1", "calling.answer", call_id=CALL),
        answered(T0 + 1, "r-1", call_id=CALL),
        connect(T0 + 2, conn=2),
        asked(T0 + 3, "r-1", "calling.end", conn=2, call_id=CALL),  # the same request id, on another connection
        answered(T0 + 3, "r-1", conn=2, call_id=CALL, message="Disconnecting call"),
        event(T0 + 3.1, "calling.call.state", conn=2, call_id=CALL, call_state="ended"),
    )
    assert [r.reply is not None for r in rec.requests] == [True, True]
    h = Harness(rec)
    h.ask("calling.answer", call_id=CALL)
    end = h.ask("calling.end", call_id=CALL)
    assert end is not None and end["result"]["message"] == "Disconnecting call"
    h.run(0.5)
    assert [e["params"]["call_state"] for e in h.events("calling.call.state")] == ["ended"]


def test_playback_refuses_demo_traffic() -> None:
    with pytest.raises(ValueError, match="playback"):
        EmulatorCore(mode="demo", playback=recording(connect()))


# -- reading a recording file --------------------------------------------------------------------------------------


def load(path: Path, problems: list[str]) -> Recording:
    """What ``relay serve --playback FILE`` reads."""
    return load_playback(str(path), lambda at, message: problems.append(f"{at}: {message}"))


def write(path: Path, frames: list[tuple[str, float, dict[str, Any], int]], *extra: bytes) -> None:
    lines = [frame_line(d, t, c, orjson.dumps(f)) for d, t, f, c in frames]
    path.write_bytes(b"".join(lines[:2]) + b"".join(extra) + b"".join(lines[2:]))


def test_bad_lines_are_reported_with_file_and_line_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write(path, answer_and_play(), b"{not json\n", b'{"event_type": "calling.call.state", "params": {}}\n')
    problems: list[str] = []
    rec = load(path, problems)
    assert problems == [
        f"{path}:3: invalid JSON: unexpected character, expected a string key",
        f'{path}:4: not a frame record (no valid "_relay" key): skipped',
    ]
    assert [r.method for r in rec.requests] == ["calling.answer", "calling.play"]
    assert rec.requests[1].where == f"{path}:8"


def test_a_recorded_connections_end_is_no_problem_and_plays_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write(path, answer_and_play())
    with path.open("ab") as f:
        f.write(close_line(RecordedClose(T0 + 9, 1, 1000, "", "by the app")))
    problems: list[str] = []
    rec = load(path, problems)
    assert problems == []
    assert [r.method for r in rec.requests] == ["calling.answer", "calling.play"]


def test_a_file_without_frame_records_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event_type": "calling.call.state", "params": {}}\n' * 3)
    problems: list[str] = []
    with pytest.raises(PlaybackError) as caught:
        load(path, problems)
    assert str(caught.value) == (
        f"{path}: nothing to play back: 3 line(s), none a frame record (record a session with relay serve --record"
        " or relay proxy --record; an event recording plays with relay serve --replay)"
    )
    assert problems == []


# -- SignalWire's SDK as the app, over TLS loopback --------------------------------------------------------------

SPEED = 50.0


@pytest.fixture
def tls(monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", str(certificate()[0]))
    return server_context()


class Answering:
    """An SDK app: answer each call, play a greeting, hang up; what it saw."""

    def __init__(self, text: str = "Hello from the recording.") -> None:
        self.text = text
        self.done: asyncio.Future[None] | None = None
        self.states: list[str] = []
        self.failure: BaseException | None = None

    async def on_call(self, call: Call) -> None:
        try:
            await call.answer()
            play = await call.play([{"type": "tts", "params": {"text": self.text}}])
            self.states.append((await play.wait()).params["state"])
            await call.hangup()
        except (RelayError, Exception) as exc:
            self.failure = exc
        finally:
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    async def run(self, emulator: Emulator, start: Any = None) -> None:
        self.done = asyncio.get_running_loop().create_future()
        port = emulator.url.rsplit(":", 1)[1]
        client = RelayClient(project="proj", token="secret-token", host=f"127.0.0.1:{port}", contexts=["default"])
        client.on_call(self.on_call)
        await client.connect()
        try:
            if start is not None:
                start()
            await asyncio.wait_for(self.done, 10)
        finally:
            await client.disconnect()


def record_session(tls: ssl.SSLContext, path: Path) -> None:
    """The app's session against the emulator's own call control, recorded both ways as ``--record`` does."""

    async def main() -> None:
        recorder, numbers = FrameRecorder(str(path)), ConnectionNumbers()
        async with Emulator(mode="app", speed=SPEED, ssl=tls, ping_interval=0) as emu:
            emu.journal.observers.append(lambda d, at, c, s, k, raws: recorder.write_many(d, at, numbers(c), raws))
            calls = emu.core.calls
            far_end = emu.core.far_ends.default

            def start() -> None:
                calls.start_inbound(context="default", from_number="+15550001", to_number="+15550002", caller=far_end)

            await Answering().run(emu, start)
        recorder.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def play(tls: ssl.SSLContext, path: Path, app: Answering) -> Emulator:
    problems: list[str] = []
    rec = load(path, problems)
    assert problems == []
    emulator = Emulator(mode="app", speed=2.0, ssl=tls, ping_interval=0, playback=rec)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(quiet_unread_actions)
        async with emulator:
            await app.run(emulator)

    asyncio.run(asyncio.wait_for(main(), 20))
    return emulator


def quiet_unread_actions(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The SDK leaves the action of a refused verb unread; the warning it logs when that is collected (a
    traceback, whenever the garbage collector runs) tells a test of a refused verb nothing it does not expect."""
    if context.get("message") != "Future exception was never retrieved":
        loop.default_exception_handler(context)


def test_the_sdk_replays_a_session_it_recorded_and_every_request_matches(tls: ssl.SSLContext, tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    record_session(tls, path)
    app = Answering()
    emulator = play(tls, path, app)
    assert app.failure is None
    assert app.states == ["finished"]
    assert emulator.playback is not None
    assert emulator.playback.summary() == (
        "playback: 3 of 3 request(s) matched the recording, 0 recorded request(s) never asked"
    )
    assert not emulator.playback.diverged


def test_an_sdk_app_that_changed_gets_the_no_match_error_as_a_failed_verb(tls: ssl.SSLContext, tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    record_session(tls, path)
    app = Answering(text="A new greeting.")
    emulator = play(tls, path, app)
    assert isinstance(app.failure, RelayError)
    assert "params.play[0].params.text" in str(app.failure)
    playback = emulator.playback
    assert playback is not None
    assert [(m.method, m.param) for m in playback.unmatched] == [("calling.play", "params.play[0].params.text")]
    assert playback.diverged
    assert playback.summary().startswith(
        "playback: 1 of 2 request(s) matched the recording, 2 recorded request(s) never asked"
    )


# -- relay serve --playback, the command -------------------------------------------------------------------------

START = re.compile(r"^relay: RELAY emulator on (ws://\S+) \(control plane on http://\S+\)$")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strict"], "relay: --strict checks a playback: it goes with --playback"),
        (
            ["--ignore-param", "text"],
            "relay: --ignore-param loosens a playback's matching: it goes with --playback",
        ),
        (
            ["--playback", "x.jsonl", "--ignore-param", "calling.play:"],
            "relay: --ignore-param 'calling.play:': give a param name (text) or a method and a param name"
            " (calling.play:text)",
        ),
        (
            ["--playback", "x.jsonl", "--demo"],
            "relay: --playback answers the app from a recording: it goes with none of --demo, --scripted, --replay,"
            " --far-ends",
        ),
        (
            ["--playback", "x.jsonl", "--callers", "2"],
            "relay: --callers places calls of its own: --playback plays the recorded ones",
        ),
    ],
)
def test_playback_options_that_cannot_work_are_usage_errors(args: list[str], message: str) -> None:
    result = relay("serve", "--port", "0", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_a_playback_file_that_is_missing_or_holds_no_frames_is_one_line(tmp_path: Path) -> None:
    missing = relay("serve", "--port", "0", "--playback", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"relay: {tmp_path / 'none.jsonl'}: no such file"
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_type": "calling.call.state", "params": {"call_id": "c"}}\n')
    empty = relay("serve", "--port", "0", "--playback", str(events))
    assert empty.returncode == 1
    assert empty.stderr.startswith(f"relay: {events}: nothing to play back: ")
    assert "Traceback" not in missing.stderr + empty.stderr


async def play_to_a_client(url: str, play_text: str) -> dict[str, Any]:
    """A client that connects, waits for the recorded inbound call, answers and plays: the play's reply."""
    async with dial(url, ping_interval=None) as ws:
        await ws.send(orjson.dumps(request("signalwire.connect", connect_params(project="p", token="t-other"))))
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("method") == "signalwire.event":
                await ws.send(orjson.dumps(ack(frame["id"])))
                if frame["params"]["event_type"] == "calling.call.receive":
                    break
        await ws.send(orjson.dumps(request("calling.answer", {"call_id": CALL, "node_id": NODE}, "a-1")))
        play = [{"t": 1}] if play_text == "as recorded" else [{"t": play_text}]
        params = {"call_id": CALL, "node_id": NODE, "control_id": "mine", "play": play}
        await ws.send(orjson.dumps(request("calling.play", params, "a-2")))
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("method") == "signalwire.event":
                await ws.send(orjson.dumps(ack(frame["id"])))
            elif frame.get("id") == "a-2":
                reply: dict[str, Any] = frame
                return reply


@pytest.mark.parametrize(
    ("strict", "play_text", "code", "ignore"),
    [(True, "as recorded", 130, ()), (True, "changed", 1, ()), (True, "changed", 130, ("--ignore-param", "t"))],
    ids=["as-recorded", "changed", "changed-but-ignored"],
)
def test_relay_serve_plays_a_recording_and_strict_fails_when_the_app_did_otherwise(
    tmp_path: Path, strict: bool, play_text: str, code: int, ignore: tuple[str, ...]
) -> None:
    path = tmp_path / "rec.jsonl"
    write(path, answer_and_play())
    proc = spawn(
        "serve",
        "--port",
        "0",
        "--control-port",
        "0",
        "--speed",
        "20",
        "-q",
        "--playback",
        str(path),
        *(["--strict"] if strict else []),
        *ignore,
    )
    assert proc.stderr is not None
    try:
        match = START.match(proc.stderr.readline().rstrip("\n"))
        assert match
        reply = asyncio.run(asyncio.wait_for(play_to_a_client(match.group(1), play_text), 20))
        _, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    if play_text == "as recorded" or ignore:
        assert reply["result"] == {"code": "200", "call_id": CALL, "control_id": "mine"}
        assert "playback: 2 of 2 request(s) matched the recording" in err
    else:
        assert reply["error"]["code"] == NO_MATCH
        assert "params.play[0].t" in reply["error"]["message"]
        assert "calling.play: params differ" in err  # said even with -q
        assert "playback: 1 of 2 request(s) matched the recording" in err
    assert proc.returncode == code
    assert "Traceback" not in err
