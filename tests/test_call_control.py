"""Call control without a socket: each verb's result and the events that follow it, on a clock moved by hand."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from test_emulator_core import Clock, Wire, connect, send

from relay_cli.emulator.farends import FarEnd, FarEnds
from relay_cli.emulator.flows import EVENT_TYPES
from relay_cli.emulator.sessions import EmulatorCore, Session
from relay_cli.emulator.verbs import ACTION, ANY, CALL_METHODS, LIST, NUM, OBJ, STR, VERBS
from relay_cli.protocol import INVALID_PARAMS, request

Frame = dict[str, Any]
CALLER = FarEnd(press="1234#", say="I would like to speak to sales")
TTS = [{"type": "tts", "params": {"text": "Thank you for calling."}}]  # 22 characters: about 1.5 s
BUSY, AGENT, SILENT = "+15550009999", "+15550002222", "+15550003333"


class Rig:
    """One core in app mode, one connected app on context ``office``, one inbound call it holds."""

    def __init__(self, mode: str = "app", caller: FarEnd = CALLER, **options: Any) -> None:
        self.clock = Clock()
        self.emu = EmulatorCore(mode=mode, clock=self.clock, wall=lambda: 1_700_000_000.0, seed=7, **options)  # type: ignore[arg-type]
        self.emu.control_url = "http://127.0.0.1:9765"
        self.emu.far_ends = FarEnds(
            numbers={BUSY: FarEnd(answer="busy", answer_after=2.0), SILENT: FarEnd(answer="no-answer")}
        )
        self.peer = Wire()
        _, session = connect(self.emu, self.peer, contexts=["office"])
        assert session is not None
        self.session: Session = session
        self.call_id = self.emu.calls.start_inbound(
            context="office", from_number="+15557770000", to_number="+15550001111", caller=caller
        )
        self.n = 0
        self.run(0.1)
        self.offered = self.events()

    def verb(self, method: str, peer: Wire | None = None, **params: Any) -> Frame:
        params.setdefault("node_id", self.emu.node_id)
        params.setdefault("call_id", self.call_id)
        self.n += 1
        reply = send(self.emu, peer or self.peer, request(method, params, f"r-{self.n}"))
        assert reply is not None
        return reply

    def ok(self, method: str, **params: Any) -> Frame:
        reply = self.verb(method, **params)
        assert reply["result"]["code"] == "200", reply
        return dict(reply["result"])

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass (speed 1: simulated and real seconds are the same), timers firing on the way."""
        end = self.clock.now + seconds
        while (due := self.emu.next_due()) is not None and due <= end:
            self.clock.now = max(self.clock.now, due)
            self.emu.tick()
        self.clock.now = end

    def events(self, *types: str) -> list[Frame]:
        """The params of every event written so far (of ``types``, if given), in order; forgets them."""
        got = [f["params"] for f in self.peer.written if f.get("method") == "signalwire.event"]
        self.peer.written.clear()
        return [e["params"] | {"event_type": e["event_type"]} for e in got if not types or e["event_type"] in types]

    def answered(self) -> Rig:
        self.run(0.5)
        self.ok("calling.answer")
        self.run(0.5)
        self.events()
        return self


def states(events: list[Frame], key: str = "state") -> list[Any]:
    return [e.get(key) for e in events]


# -- the call itself ---------------------------------------------------------------------------------------------


def test_an_inbound_call_is_offered_rings_and_answer_is_answered_after_its_result() -> None:
    rig = Rig()
    assert states(rig.offered, "call_state") == ["created", "ringing"]
    assert rig.offered[0]["event_type"] == "calling.call.receive" and rig.offered[0]["context"] == "office"
    reply = rig.verb("calling.answer")
    assert reply["result"] == {"code": "200", "message": "Answered", "call_id": rig.call_id}
    assert rig.events() == []  # answered follows the result, never comes with it
    rig.run(0.1)
    [answered] = rig.events()
    assert answered["event_type"] == "calling.call.state" and answered["call_state"] == "answered"
    assert answered["call_id"] == rig.call_id and answered["direction"] == "inbound"
    assert answered["device"]["params"] == {"from_number": "+15557770000", "to_number": "+15550001111"}
    status = rig.emu.calls.status(rig.call_id)
    assert status == {
        "call_id": rig.call_id,
        "direction": "inbound",
        "from_number": "+15557770000",
        "to_number": "+15550001111",
        "context": "office",
        "state": "answered",
        "answered": True,
        "end_reason": None,
        "session_id": rig.session.sessionid,
    }


def test_every_event_has_the_real_envelope() -> None:
    rig = Rig()
    rig.ok("calling.answer")
    rig.run(0.1)
    frame = rig.peer.written[-1]
    assert frame["method"] == "signalwire.event"
    envelope = frame["params"]
    assert envelope["event_channel"] == rig.session.protocol and envelope["project_id"] == "proj"
    assert envelope["space_id"] == rig.emu.space_id and envelope["timestamp"] == 1_700_000_000.0
    assert envelope["params"]["node_id"] == rig.emu.node_id


def test_end_ends_running_actions_first_then_the_call_and_later_verbs_get_410() -> None:
    rig = Rig().answered()
    rig.ok("calling.play", control_id="p-1", play=TTS)
    rig.ok("calling.record", control_id="r-1", record={"audio": {}})
    rig.run(0.2)
    rig.events()
    assert rig.ok("calling.end", reason="busy") == {
        "code": "200",
        "message": "Disconnecting call",
        "call_id": rig.call_id,
    }
    assert rig.verb("calling.play", control_id="p-2", play=TTS)["result"]["code"] == "410"
    rig.run(1)
    got = rig.events()
    assert [(e["event_type"], e.get("state") or e.get("call_state")) for e in got] == [
        ("calling.call.play", "finished"),
        ("calling.call.record", "finished"),
        ("calling.call.state", "ending"),
        ("calling.call.state", "ended"),
    ]
    assert got[-1]["end_reason"] == "busy"
    status = rig.emu.calls.status(rig.call_id)
    assert status is not None and status["state"] == "ended" and status["answered"] is True
    gone = rig.verb("calling.answer")["result"]
    assert gone == {"code": "410", "message": "Call has ended", "call_id": rig.call_id}


def test_the_far_end_hangs_up_after_its_script_says() -> None:
    rig = Rig(caller=FarEnd(hangup_after=3.0)).answered()
    rig.ok("calling.play", control_id="p-1", play=[{"type": "silence", "params": {"duration": 60}}])
    rig.run(2)
    assert states(rig.events("calling.call.state"), "call_state") == []
    rig.run(2)
    got = rig.events()
    assert [e.get("state") or e.get("call_state") for e in got] == ["finished", "ending", "ended"]
    assert got[-1]["end_reason"] == "hangup"


def test_a_call_nobody_answers_rings_out_with_no_answer_and_an_answered_one_does_not() -> None:
    rig = Rig(ring_timeout=10.0)
    rig.run(11)
    assert [(e["call_state"], e.get("end_reason")) for e in rig.events()][-2:] == [
        ("ending", "noAnswer"),
        ("ended", "noAnswer"),
    ]
    status = rig.emu.calls.status(rig.call_id)
    assert status is not None and status["answered"] is False and status["end_reason"] == "noAnswer"

    kept = Rig(ring_timeout=10.0).answered()
    kept.run(20)
    assert kept.events() == []


def test_pass_offers_the_call_to_the_next_session_and_an_answered_call_cannot_be_passed() -> None:
    rig = Rig()
    other = Wire("client:2")
    _, second = connect(rig.emu, other, contexts=["office"])
    assert second is not None
    assert rig.ok("calling.pass")["message"] == "Passing call"
    offers = [f["params"]["params"] for f in other.written if f["params"]["event_type"] == "calling.call.receive"]
    assert [o["call_id"] for o in offers] == [rig.call_id]
    assert rig.verb("calling.answer")["result"]["code"] == "404"  # not the first app's call any more
    assert rig.verb("calling.answer", peer=other)["result"]["code"] == "200"
    refused = rig.verb("calling.pass", peer=other)["result"]
    assert refused["code"] == "409" and refused["message"] == "Call already answered"
    status = rig.emu.calls.status(rig.call_id)
    assert status is not None and status["session_id"] == second.sessionid


def test_start_inbound_to_a_session_by_its_id_and_an_unknown_session_is_a_lookup_error() -> None:
    rig = Rig()
    other = Wire("client:2")
    _, second = connect(rig.emu, other, contexts=["elsewhere"])
    assert second is not None
    call_id = rig.emu.calls.start_inbound(
        context="office", from_number="+1", to_number="+2", caller=CALLER, session_id=second.sessionid
    )
    assert [f["params"]["params"]["call_id"] for f in other.written] == [call_id]
    with pytest.raises(LookupError, match="no such session"):
        rig.emu.calls.start_inbound(context="office", from_number="+1", to_number="+2", caller=CALLER, session_id="x")
    assert rig.emu.calls.status("no-such-call") is None
    assert [c["call_id"] for c in rig.emu.calls.calls()] == [rig.call_id, call_id]


def test_callers_arrive_at_the_rate_asked_until_stopped() -> None:
    rig = Rig()
    rig.events()
    rig.emu.calls.start_callers(6, context="office")  # one every 10 simulated seconds
    rig.run(35)
    assert len(rig.events("calling.call.receive")) == 3
    rig.emu.calls.stop_callers()
    rig.run(60)
    assert rig.events("calling.call.receive") == []
    with pytest.raises(ValueError, match="must not be negative"):
        rig.emu.calls.start_callers(-1)


# -- media -------------------------------------------------------------------------------------------------------


def test_play_reports_playing_then_finished_when_the_speech_is_done() -> None:
    rig = Rig().answered()
    reply = rig.ok("calling.play", control_id="p-1", play=TTS)
    assert reply == {"code": "200", "message": "Playing", "call_id": rig.call_id, "control_id": "p-1"}
    rig.run(0.1)
    assert [(e["event_type"], e["control_id"], e["state"]) for e in rig.events()] == [
        ("calling.call.play", "p-1", "playing")
    ]
    rig.run(1.0)
    assert rig.events() == []  # 22 characters at 15 a second: not yet
    rig.run(1.0)
    assert states(rig.events()) == ["finished"]


def test_play_pause_resume_volume_and_stop_act_on_the_running_play() -> None:
    rig = Rig().answered()
    rig.ok("calling.play", control_id="p-1", play=[{"type": "silence", "params": {"duration": 4}}])
    rig.run(1)
    assert rig.ok("calling.play.pause", control_id="p-1")["message"] == "Pausing"
    rig.run(10)
    assert rig.ok("calling.play.volume", control_id="p-1", volume=-4.0)["message"] == "Volume set"
    rig.ok("calling.play.resume", control_id="p-1")
    rig.run(2)
    assert states(rig.events()) == ["playing", "paused", "playing"]  # 3 s of the 4 were left
    rig.ok("calling.play.stop", control_id="p-1")
    rig.run(0.1)
    assert states(rig.events()) == ["finished"]
    gone = rig.verb("calling.play.stop", control_id="p-1")["result"]
    assert gone == {"code": "404", "message": "Action not found", "call_id": rig.call_id, "control_id": "p-1"}


@pytest.mark.parametrize(
    ("media", "why"),
    [
        ({"type": "video", "params": {}}, "play[0]: type must be one of audio, tts, silence, ringtone"),
        ({"type": "audio", "params": {"url": "not a url"}}, "play[0]: audio params.url must be an http(s) URL"),
        ({"type": "audio", "params": {"url": "ftp://example.com/a.mp3"}}, "play[0]: audio params.url must be"),
        ({"type": "audio", "params": {"url": "https://"}}, "play[0]: audio params.url must be"),
    ],
)
def test_unusable_media_is_a_play_error_and_a_calling_error(media: Frame, why: str) -> None:
    rig = Rig().answered()
    rig.ok("calling.play", control_id="p-1", play=[media])
    rig.run(0.1)
    got = rig.events()
    assert [(e["event_type"], e.get("state")) for e in got] == [("calling.call.play", "error"), ("calling.error", None)]
    assert got[1]["code"] == "400" and why in got[1]["message"]


def test_audio_from_an_http_url_plays() -> None:
    rig = Rig().answered()
    rig.ok("calling.play", control_id="p-1", play=[{"type": "audio", "params": {"url": "http://example.com/a.mp3"}}])
    rig.run(10)
    assert [e.get("state") for e in rig.events()] == ["playing", "finished"]


def test_record_finishes_after_the_far_end_spoke_with_a_url_the_control_plane_serves() -> None:
    rig = Rig().answered()
    reply = rig.ok("calling.record", control_id="r-1", record={"audio": {"end_silence_timeout": 1.0}})
    assert reply["message"] == "Recording" and reply["url"].startswith("http://127.0.0.1:9765/relay/recordings/")
    rig.run(5)
    recording, finished = rig.events()
    assert recording["state"] == "recording"
    assert finished["state"] == "finished" and finished["url"] == reply["url"]
    assert finished["record"] == {k: finished[k] for k in ("url", "duration", "size")} | {"format": "wav"}
    assert finished["duration"] == pytest.approx(30 / 15 + 1.0, abs=0.01)
    recording_id = reply["url"].rsplit("/", 1)[1].removesuffix(".wav")
    assert rig.emu.calls.recording(recording_id) == finished["duration"]
    assert rig.emu.calls.recording("nope") is None


def test_record_of_a_silent_far_end_is_no_input_and_pause_resume_stop_work() -> None:
    silent = Rig(caller=FarEnd(say="")).answered()
    silent.ok("calling.record", control_id="r-1", record={"audio": {"initial_timeout": 2.0}})
    silent.run(3)
    assert states(silent.events()) == ["recording", "no_input"]

    rig = Rig().answered()
    rig.ok("calling.record", control_id="r-1", record={"audio": {}})
    rig.run(1.05)
    rig.ok("calling.record.pause", control_id="r-1")
    rig.run(5)
    rig.ok("calling.record.resume", control_id="r-1")
    rig.run(0.5)
    rig.ok("calling.record.stop", control_id="r-1")
    rig.run(0.1)
    got = rig.events()
    assert states(got) == ["recording", "paused", "recording", "finished"]
    assert got[-1]["duration"] == pytest.approx(1.5, abs=0.01)  # the paused 5 s are not in it


def test_play_and_collect_plays_the_prompt_then_collects_what_the_far_end_presses() -> None:
    rig = Rig().answered()
    reply = rig.ok("calling.play_and_collect", control_id="c-1", play=TTS, collect={"digits": {"max": 6}})
    assert reply["message"] == "Playing and collecting"
    rig.run(6)
    got = rig.events()
    assert [(e["event_type"], e.get("state")) for e in got] == [
        ("calling.call.play", "playing"),
        ("calling.call.play", "finished"),
        ("calling.call.collect", None),
    ]
    assert {e["control_id"] for e in got} == {"c-1"}
    assert got[-1]["result"] == {"type": "digit", "params": {"digits": "1234", "terminator": "#"}}


@pytest.mark.parametrize(
    ("caller", "params", "expected"),
    [
        (CALLER, {"digits": {"max": 2}}, {"type": "digit", "params": {"digits": "12", "terminator": ""}}),
        (CALLER, {"speech": {}}, {"type": "speech", "params": {"text": CALLER.say, "confidence": 92.5}}),
        (FarEnd(press="", say=""), {"digits": {}, "speech": {}}, {"type": "no_input"}),
        (FarEnd(press="#"), {"digits": {}}, {"type": "no_match"}),
    ],
)
def test_collect_comes_to_what_the_far_end_does(caller: FarEnd, params: Frame, expected: Frame) -> None:
    rig = Rig(caller=caller).answered()
    assert rig.ok("calling.collect", control_id="c-1", **params)["message"] == "Collecting"
    rig.run(10)
    [collected] = rig.events()
    assert collected["event_type"] == "calling.call.collect" and collected["result"] == expected


def test_collect_with_partial_results_reports_a_partial_then_the_final_result() -> None:
    rig = Rig().answered()
    rig.ok("calling.collect", control_id="c-1", speech={}, partial_results=True)
    rig.run(10)
    partial, final = rig.events()
    assert (partial["final"], final["final"]) == (False, True)
    assert final["result"]["params"]["text"] == CALLER.say


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("method", ["calling.collect", "calling.play_and_collect"])
def test_a_continuous_collect_goes_on_after_a_result_until_stopped(method: str, partial: bool) -> None:
    rig = Rig().answered()
    spec = {"speech": {}, "continuous": True, "partial_results": partial}
    params: Frame = {"collect": spec, "play": TTS} if method == "calling.play_and_collect" else spec
    rig.ok(method, control_id="c-1", **params)
    rig.run(30)
    heard = [(e["state"], e["final"], e["result"]["params"]["text"]) for e in rig.events("calling.call.collect")]
    whole = ("collecting", True, CALLER.say)
    assert heard == ([("collecting", False, CALLER.say[: len(CALLER.say) // 2])] if partial else []) + [whole]
    assert rig.ok(f"{method}.stop", control_id="c-1")["code"] == "200"  # still running: not a 404
    rig.run(0.1)
    [end] = rig.events("calling.call.collect")
    assert (end["state"], end["final"], end["result"]["params"]["text"]) == ("finished", True, CALLER.say)


def test_a_continuous_collect_ends_with_the_call_and_one_that_heard_nothing_says_no_input() -> None:
    rig = Rig(caller=FarEnd(press="", say="")).answered()
    rig.ok("calling.collect", control_id="c-1", digits={}, continuous=True, initial_timeout=1)
    rig.run(3)
    assert [e["result"] for e in rig.events("calling.call.collect")] == [{"type": "no_input"}]
    rig.ok("calling.end")
    rig.run(1)
    assert [e["state"] for e in rig.events("calling.call.collect")] == ["finished"]


def test_collect_waiting_for_input_timers_starts_them_on_request_and_stop_ends_it() -> None:
    rig = Rig(caller=FarEnd(press="", say="")).answered()
    rig.ok("calling.collect", control_id="c-1", digits={}, start_input_timers=False, initial_timeout=1)
    rig.run(5)
    assert rig.events() == []
    rig.ok("calling.collect.start_input_timers", control_id="c-1")
    rig.run(2)
    assert [e["result"] for e in rig.events()] == [{"type": "no_input"}]
    rig.ok("calling.collect", control_id="c-2", digits={}, start_input_timers=False)
    rig.ok("calling.collect.stop", control_id="c-2")
    rig.run(0.1)
    assert [(e["state"], e["result"]) for e in rig.events()] == [("finished", {"type": "no_input"})]


@pytest.mark.parametrize(
    ("caller", "detect", "expected"),
    [
        (FarEnd(machine=True), {"type": "machine", "params": {}}, ["MACHINE", "READY", "finished"]),
        (FarEnd(), {"type": "machine", "params": {}}, ["HUMAN", "finished"]),
        (FarEnd(fax=True), {"type": "fax", "params": {}}, ["CED", "finished"]),
        (FarEnd(press="5"), {"type": "digit", "params": {}}, ["5", "finished"]),
        (FarEnd(), {"type": "fax", "params": {}}, ["finished"]),
    ],
)
def test_detect_reports_what_the_far_end_is_then_finished(caller: FarEnd, detect: Frame, expected: list[str]) -> None:
    rig = Rig(caller=caller).answered()
    assert rig.ok("calling.detect", control_id="d-1", detect=detect, timeout=5)["message"] == "Detect started"
    rig.run(10)
    got = rig.events()
    assert [e["detect"]["params"]["event"] for e in got] == expected
    assert {e["detect"]["type"] for e in got} == {detect["type"]} and got[-1]["state"] == "finished"


# -- legs --------------------------------------------------------------------------------------------------------


def phone(number: str) -> Frame:
    return {"type": "phone", "params": {"to_number": number, "from_number": "+15550001111"}}


def test_connect_rings_a_peer_leg_naming_its_parent_and_connects_it() -> None:
    rig = Rig().answered()
    assert rig.ok("calling.connect", devices=[[phone(AGENT)]]) == {
        "code": "200",
        "message": "connecting",
        "call_id": rig.call_id,
    }
    rig.run(5)
    got = rig.events()
    connects = [e for e in got if e["event_type"] == "calling.call.connect"]
    legs = [e for e in got if e["event_type"] == "calling.call.state"]
    assert states(connects, "connect_state") == ["connecting", "connected"]
    assert states(legs, "call_state") == ["created", "ringing", "answered"]
    assert {e["peer"]["call_id"] for e in legs} == {rig.call_id}
    assert connects[1]["peer"]["call_id"] == legs[0]["call_id"]
    rig.ok("calling.disconnect")
    rig.run(1)
    after = rig.events()
    assert [(e["event_type"], e.get("connect_state") or e.get("call_state")) for e in after] == [
        ("calling.call.connect", "disconnected"),
        ("calling.call.state", "ending"),
        ("calling.call.state", "ended"),
    ]
    assert after[-1]["call_id"] == legs[0]["call_id"]  # the leg ended; the caller is still there
    assert rig.ok("calling.play", control_id="p-1", play=TTS)["code"] == "200"


def test_connect_to_a_busy_number_fails_and_serial_devices_are_tried_in_turn() -> None:
    rig = Rig().answered()
    rig.ok("calling.connect", devices=[[phone(BUSY)]])
    rig.run(5)
    got = rig.events()
    assert states([e for e in got if e["event_type"] == "calling.call.connect"], "connect_state") == [
        "connecting",
        "failed",
    ]
    assert got[-1]["failed_reason"] == "busy"

    rig.ok("calling.connect", devices=[[phone(BUSY)], [phone(AGENT)]])
    rig.run(10)
    legs = [(e["device"]["params"]["to_number"], e["call_state"]) for e in rig.events("calling.call.state")]
    assert legs == [
        (BUSY, "created"),
        (BUSY, "ringing"),
        (BUSY, "ending"),
        (BUSY, "ended"),
        (AGENT, "created"),
        (AGENT, "ringing"),
        (AGENT, "answered"),
    ]


def test_dial_tags_its_legs_and_the_answered_one_wins() -> None:
    rig = Rig()
    rig.events()
    reply = rig.verb("calling.dial", tag="t-1", devices=[[phone(SILENT), phone(AGENT)]], call_id=None)
    assert reply["result"] == {"code": "200", "message": "Dialing"}
    rig.run(5)
    got = rig.events()
    assert {e.get("tag") for e in got} == {"t-1"}
    dials = [e for e in got if e["event_type"] == "calling.call.dial"]
    assert states(dials, "dial_state") == ["dialing", "answered"]
    winner = dials[-1]["call"]
    assert winner["dial_winner"] is True and winner["tag"] == "t-1" and winner["device"]["params"]["to_number"] == AGENT
    assert "call_id" not in dials[-1]
    created = [e for e in got if e.get("call_state") == "created"]
    assert len(created) == 2 and {e["created_by"] for e in created} == {"dial"}
    loser = [e for e in got if e.get("call_state") == "ended"]
    assert [(e["device"]["params"]["to_number"], e["end_reason"]) for e in loser] == [(SILENT, "cancel")]
    status = rig.emu.calls.status(winner["call_id"])
    assert status is not None and status["direction"] == "outbound" and status["state"] == "answered"
    rig.call_id = winner["call_id"]
    assert rig.ok("calling.play", control_id="p-1", play=TTS)["code"] == "200"  # the dialler controls its leg


@pytest.mark.parametrize(("number", "reason"), [(BUSY, "busy"), (SILENT, "noAnswer")])
def test_a_dial_nobody_answers_ends_its_leg_then_fails_with_no_call(number: str, reason: str) -> None:
    rig = Rig()
    rig.events()
    rig.verb("calling.dial", tag="t-1", devices=[[{**phone(number), "params": {"to_number": number, "timeout": 5}}]])
    rig.run(10)
    got = rig.events()
    assert [e.get("call_state") or e.get("dial_state") for e in got] == [
        "created",
        "dialing",
        "ringing",
        "ending",
        "ended",
        "failed",
    ]
    assert got[-2]["end_reason"] == reason and "call" not in got[-1] and got[-1]["tag"] == "t-1"


@pytest.mark.parametrize("lateness", [0.07, 0.3, 1.0])
def test_a_failed_dial_is_told_after_its_legs_end_however_late_the_timers_run(lateness: float) -> None:
    """A loaded machine runs timers late: the clock here jumps ``lateness`` seconds between ticks."""
    rig = Rig()
    rig.events()
    devices = [[phone(BUSY)], [{**phone(SILENT), "params": {"to_number": SILENT, "timeout": 2}}]]
    rig.verb("calling.dial", tag="t-1", devices=devices)
    for _ in range(int(15 / lateness)):
        rig.clock.now += lateness
        rig.emu.tick()
    got = [
        (e.get("device", {}).get("params", {}).get("to_number"), e.get("call_state") or e.get("dial_state"))
        for e in rig.events()
    ]
    first = ["created", "dialing", "ringing", "ending", "ended"]  # the busy group; the dial event once
    assert [what for _, what in got] == [*first, "created", "ringing", "ending", "ended", "failed"]
    assert [number for number, what in got if what == "ended"] == [BUSY, SILENT]


def test_a_dialled_sip_device_comes_back_as_the_app_gave_it_and_a_phone_names_both_numbers() -> None:
    rig = Rig()
    sip = {"type": "sip", "params": {"to": "sip:agent@example.com", "from": "sip:app@example.com"}}
    rig.verb("calling.dial", tag="t-1", devices=[[sip]])
    rig.run(10)
    [created] = [e for e in rig.events() if e.get("call_state") == "created"]
    assert created["device"] == sip
    rig.verb("calling.dial", tag="t-2", devices=[[{"type": "phone", "params": {"to_number": AGENT}}]])
    rig.run(10)
    [created] = [e for e in rig.events() if e.get("call_state") == "created"]
    assert created["device"] == {"type": "phone", "params": {"to_number": AGENT, "from_number": ""}}


def _ended(events: list[Frame]) -> list[tuple[str, str]]:
    return [(e["call_id"], e["end_reason"]) for e in events if e.get("call_state") == "ended"]


def test_an_answer_with_max_duration_ends_the_call_that_many_minutes_on() -> None:
    rig = Rig()
    rig.ok("calling.answer", max_duration=2)
    rig.run(119)
    assert _ended(rig.events()) == []
    rig.run(2)
    assert _ended(rig.events()) == [(rig.call_id, "max_duration")]


def test_a_dialled_call_with_max_duration_ends_when_it_is_reached() -> None:
    rig = Rig()
    rig.verb("calling.dial", tag="t-1", devices=[[phone(AGENT)]], max_duration=1)
    rig.run(10)
    [winner] = [e["call"]["call_id"] for e in rig.events() if e.get("dial_state") == "answered"]
    rig.run(60)
    assert [e for e in _ended(rig.events()) if e[0] != rig.call_id] == [(winner, "max_duration")]  # ours rang out


def test_a_connect_with_max_duration_ends_the_peer_leg_and_the_call_carries_on() -> None:
    rig = Rig().answered()
    rig.ok("calling.connect", devices=[[phone(AGENT)]], max_duration=1)
    rig.run(10)
    [peer] = [e["peer"]["call_id"] for e in rig.events() if e.get("connect_state") == "connected"]
    rig.run(61)
    got = rig.events()
    assert _ended(got) == [(peer, "max_duration")]
    assert [e["connect_state"] for e in got if e["event_type"] == "calling.call.connect"] == ["disconnected"]
    assert rig.emu.calls.status(rig.call_id)["state"] == "answered"  # type: ignore[index]


@pytest.mark.parametrize("value", ["5", -1, -0.5, True, [1]])
@pytest.mark.parametrize("method", ["calling.answer", "calling.dial", "calling.connect"])
def test_a_max_duration_that_is_no_positive_number_is_invalid_params(method: str, value: Any) -> None:
    rig = Rig()
    params: dict[str, Any] = {"max_duration": value}
    if method != "calling.answer":
        params.update(tag="t-1", devices=[[phone(AGENT)]])
    reply = rig.verb(method, **params)
    assert reply["error"]["code"] == INVALID_PARAMS
    assert reply["error"]["message"] == "Invalid params: max_duration must be a positive number of minutes"


# -- results and errors ------------------------------------------------------------------------------------------


def minimal(fields: tuple[tuple[str, str], ...]) -> Frame:
    value = {STR: "x", LIST: [{"type": "silence", "params": {"duration": 1}}], OBJ: {}, NUM: 1, ANY: "start"}
    params: Frame = {}
    for name, kind in fields:
        params[name.split("|")[0]] = value[kind]
    return params


@pytest.mark.parametrize("method", sorted(VERBS))
def test_every_verb_answers_200_with_its_message_and_echoes_its_ids(method: str) -> None:
    rig = Rig().answered()
    params = minimal(VERBS[method].fields) | {"call_id": rig.call_id, "node_id": rig.emu.node_id}
    if method == "calling.detect":
        params["detect"] = {"type": "digit"}
    if method == "calling.tap":
        params["device"] = {"type": "rtp", "params": {"addr": "127.0.0.1", "port": 1234}}
    if method == "calling.stream":
        params["url"] = "wss://example.com/stream"
    if method == "calling.send_digits":
        params["digits"] = "12#"
    if method in ("calling.connect",):
        params["devices"] = [[phone(AGENT)]]
    reply = rig.verb(method, **params)["result"]
    if reply["code"] == "404":  # a sub-command needs its action running first
        assert method.count(".") == 2 or method in ("calling.queue.leave", "calling.leave_conference")
        assert reply["message"] in ("Action not found", "Call is not in that queue", "Call is not in that conference")
        return
    assert reply["code"] == "200" and reply["message"] == VERBS[method].message and reply["message"]
    assert reply["call_id"] == rig.call_id
    if ("control_id", STR) in VERBS[method].fields:
        assert reply["control_id"] == "x"


def test_every_call_event_type_comes_from_some_verb() -> None:
    rig = Rig(caller=FarEnd(press="1#", machine=True, fax=True)).answered()
    rig.emu.calls.start_inbound(context="office", from_number="+1", to_number="+2", caller=CALLER)
    verbs: list[tuple[str, Frame]] = [
        ("calling.play", {"play": TTS}),
        ("calling.record", {"record": {}}),
        ("calling.collect", {"digits": {}}),
        ("calling.detect", {"detect": {"type": "machine"}}),
        ("calling.send_fax", {"document": "https://example.com/a.pdf"}),
        ("calling.tap", {"tap": {"type": "audio"}, "device": {"type": "rtp", "params": {}}}),
        ("calling.stream", {"url": "ftp://not-a-websocket"}),
        ("calling.send_digits", {"digits": "1"}),
        ("calling.denoise", {}),
        ("calling.pay", {"payment_connector_url": "https://pay.example.com"}),
        ("calling.queue.enter", {"queue_name": "support"}),
        ("calling.echo", {}),
        ("calling.transcribe", {}),
        ("calling.hold", {}),
        ("calling.join_conference", {"name": "standup"}),
        ("calling.connect", {"devices": [[phone(AGENT)]]}),
    ]
    for n, (method, params) in enumerate(verbs):
        rig.ok(method, control_id=f"a-{n}", **params)
    rig.run(30)
    rig.ok("calling.refer", device={"type": "sip", "params": {"to": "sip:bob@example.com"}})
    rig.run(1)
    rig.verb("calling.dial", tag="t", devices=[[phone(AGENT)]])
    rig.run(5)
    seen = {e["event_type"] for e in rig.events()}
    assert seen >= set(EVENT_TYPES) - {"messaging.receive", "messaging.state"}


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("calling.answer", {"node_id": "n"}, "call_id"),
        ("calling.answer", {"call_id": "c"}, "node_id"),
        ("calling.play", {"control_id": "p"}, "play"),
        ("calling.play", {"control_id": "p", "play": "hello"}, "play"),
        ("calling.play", {"play": [{}]}, "control_id"),
        ("calling.record", {"control_id": "r"}, "record"),
        ("calling.play_and_collect", {"control_id": "c", "play": TTS}, "collect"),
        ("calling.collect", {"control_id": "c"}, "digits or speech"),
        ("calling.connect", {}, "devices"),
        ("calling.connect", {"devices": [[{"type": "phone", "params": {}}]]}, "devices[0][0].params.to_number"),
        ("calling.send_digits", {"control_id": "s"}, "digits"),
        ("calling.send_digits", {"control_id": "s", "digits": "12x"}, "digits"),
        ("calling.detect", {"control_id": "d", "detect": {"type": "psychic"}}, "detect.type"),
        ("calling.play.volume", {"control_id": "p"}, "volume"),
        ("calling.end", {"reason": "bored"}, "reason"),
        ("calling.dial", {"tag": "t"}, "devices"),
        ("calling.dial", {"devices": [[phone(AGENT)]]}, "tag"),
        ("calling.tap", {"control_id": "t", "tap": {}}, "device"),
        ("calling.pass", {"call_id": 1}, "call_id"),
    ],
)
def test_a_request_missing_what_its_method_needs_is_32602_naming_the_field(
    method: str, params: Frame, field: str
) -> None:
    rig = Rig()
    base = {"call_id": rig.call_id, "node_id": rig.emu.node_id}
    reply = send(rig.emu, rig.peer, request(method, params if field in base else base | params, "bad"))
    assert reply is not None
    err = reply["error"]
    assert err["code"] == INVALID_PARAMS and field in err["message"]
    assert err["data"] == {"signalwire_error_code": "INVALID_PARAMS"}


def test_unknown_calls_are_404_and_the_demo_traffics_calls_409() -> None:
    rig = Rig()
    reply = rig.verb("calling.play", call_id="no-such-call", control_id="p", play=TTS)["result"]
    assert reply == {"code": "404", "message": "Call not found", "call_id": "no-such-call"}

    demo = Rig(mode="demo", rate=0)
    demo.emu.draw(demo.session, 50)
    demo_call = next(iter(demo.session.live_calls))
    reply = demo.verb("calling.answer", call_id=demo_call)["result"]
    assert reply == {"code": "409", "message": "Call is controlled by another client", "call_id": demo_call}
    assert demo.ok("calling.answer")["message"] == "Answered"  # a far end's call is the app's even in demo mode


def test_scripted_mode_answers_every_well_formed_request_200_and_sends_no_event() -> None:
    rig = Rig(mode="scripted")
    rig.events()
    for method in ("calling.answer", "calling.play", "calling.play.stop", "calling.end", "calling.pass"):
        reply = rig.verb(method, call_id="any-call", control_id="p", play=TTS)["result"]
        assert reply["code"] == "200" and reply["call_id"] == "any-call"
    assert rig.verb("calling.dial", tag="t", devices=[[phone(AGENT)]])["result"] == {
        "code": "200",
        "message": "Dialing",
    }
    rig.run(60)
    assert [e["event_type"] for e in rig.events()] == ["calling.call.state", "calling.call.state"]  # the ring-out
    assert rig.emu.calls.status("any-call") is None
    bad = rig.verb("calling.play", control_id="p")
    assert bad["error"]["code"] == INVALID_PARAMS


def test_a_call_offered_without_a_script_is_controlled_with_the_default_far_end() -> None:
    rig = Rig()
    rig.emu.offer_call("office", "plain-1", "+15551112222", "+15550001111")
    rig.events()
    assert rig.ok("calling.answer", call_id="plain-1")["call_id"] == "plain-1"
    rig.run(0.2)
    assert states(rig.events(), "call_state") == ["answered"]
    status = rig.emu.calls.status("plain-1")
    assert status is not None and status["from_number"] == "+15551112222"


def test_call_methods_cover_every_calling_verb_the_sdk_sends() -> None:
    sdk = {
        "answer", "end", "pass", "play", "record", "collect", "play_and_collect", "detect", "connect", "disconnect",
        "send_digits", "tap", "stream", "transcribe", "denoise", "denoise.stop", "hold", "unhold", "echo", "pay",
        "queue.enter", "queue.leave", "send_fax", "receive_fax", "refer", "transfer", "join_conference",
        "leave_conference", "ai", "ai_message", "ai_hold", "ai_unhold", "amazon_bedrock", "bind_digit",
        "clear_digit_bindings", "live_transcribe", "live_translate", "join_room", "leave_room", "user_event", "dial",
        "collect.start_input_timers",
    }  # fmt: skip
    for prefix in ("play", "record", "collect", "play_and_collect", "detect", "tap", "stream", "pay", "transcribe",
                   "ai", "send_fax", "receive_fax"):  # fmt: skip
        sdk.add(f"{prefix}.stop")
    sdk |= {"play.pause", "play.resume", "play.volume", "record.pause", "record.resume", "play_and_collect.volume"}
    assert {f"calling.{m}" for m in sdk} <= set(CALL_METHODS)
    assert orjson.dumps(sorted(CALL_METHODS))  # plain strings, one table
    assert ACTION[-1] == ("control_id", STR)
