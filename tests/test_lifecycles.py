"""The lifecycles of PROTOCOL.md section 9 as data (relay_cli.lifecycles): sound, and the one copy the views read."""

from __future__ import annotations

import pytest

from relay_cli.lifecycles import (
    ACTION_FAILED,
    ACTIONS,
    ANSWERED,
    CALL,
    COLLECT_RESULTS,
    DIAL,
    END_REASONS,
    ENDED,
    INBOUND_MESSAGE,
    MESSAGE,
    Lifecycle,
)
from relay_cli.views.printers import Format, Style, make_printer
from relay_cli.views.summary import Summary
from relay_cli.views.timeline import CallTracker

ORDERED = [lc for lc in ACTIONS.values() if lc.follows]


def test_a_call_moves_from_created_through_answered_to_ended() -> None:
    assert CALL.states == ("created", "ringing", ANSWERED, "ending", ENDED)
    assert CALL.final == (ENDED,) and CALL.rank[ENDED] == CALL.last
    assert [CALL.rank[state] for state in CALL.states] == list(range(len(CALL.states)))
    assert set(CALL.event_types) == {"calling.call.receive", "calling.call.state"}


def test_end_reasons_are_those_of_the_protocol() -> None:
    assert set(END_REASONS) == {
        "hangup", "cancel", "busy", "noAnswer", "decline", "error", "abandoned", "max_duration", "not_found",
    }  # fmt: skip
    assert set(CALL.failed) <= set(END_REASONS)


def test_an_outbound_message_ends_delivered_undelivered_or_failed_and_an_inbound_one_is_received() -> None:
    assert MESSAGE.states == ("queued", "initiated", "sent", "delivered", "undelivered", "failed")
    assert MESSAGE.final == ("delivered", "undelivered", "failed")
    assert set(MESSAGE.failed) < set(MESSAGE.final)
    assert INBOUND_MESSAGE.final == ("received",) and INBOUND_MESSAGE.event_types == ("messaging.receive",)


@pytest.mark.parametrize("lifecycle", ORDERED, ids=lambda lc: lc.name)
def test_every_ordered_action_starts_from_nothing_and_names_only_its_own_states(lifecycle: Lifecycle) -> None:
    states = set(lifecycle.follows)
    assert lifecycle.may_follow("", lifecycle.start) is True
    assert lifecycle.start in lifecycle.next_states("")
    assert set(lifecycle.final) <= states
    for before in lifecycle.follows.values():
        assert before <= states | {""}


@pytest.mark.parametrize("lifecycle", ORDERED, ids=lambda lc: lc.name)
def test_every_walk_of_an_action_reaches_a_final_state(lifecycle: Lifecycle) -> None:
    """What the emulator's flows rely on: following `next_states` from the start never gets stuck."""
    seen: set[str] = set()
    todo = [""]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        after = lifecycle.next_states(state)
        assert after or state in lifecycle.final, f"{lifecycle.name} is stuck in {state!r}"
        todo += after
    assert set(lifecycle.final) <= seen


def test_play_may_pause_and_play_again_and_record_ends_without_input() -> None:
    play = ACTIONS["calling.call.play"]
    assert play.next_states("playing") == ("paused", "finished", "error")
    assert play.may_follow("paused", "playing") is True and play.may_follow("finished", "playing") is False
    assert ACTIONS["calling.call.record"].final == ("finished", "no_input")


def test_a_state_outside_the_lifecycle_is_not_judged() -> None:
    assert ACTIONS["calling.call.play"].may_follow("playing", "buffering") is None


def test_a_dial_is_dialing_then_answered_or_failed() -> None:
    assert DIAL.event_type == "calling.call.dial" and DIAL.key == "dial_state"
    assert DIAL.next_states("dialing") == ("answered", "failed") and DIAL.final == ("answered", "failed")


def test_every_action_with_a_state_knows_its_failures() -> None:
    assert {lc.name for lc in ACTIONS.values()} >= {"play", "record", "connect", "tap", "stream", "dial", "pay"}
    assert all(lc.failed == ACTION_FAILED for lc in ACTIONS.values())
    assert "error" in COLLECT_RESULTS


def test_the_lifecycle_data_cannot_be_changed_by_a_reader() -> None:
    with pytest.raises(TypeError):
        ACTIONS["calling.call.play"].follows["playing"] = frozenset()  # type: ignore[index]
    with pytest.raises(TypeError):
        CALL.rank["created"] = 9  # type: ignore[index]


# -- the views read them ---------------------------------------------------------------------------------


def play(state: str, at: float) -> dict[str, object]:
    return {
        "event_type": "calling.call.play",
        "timestamp": 1_764_201_600.0 + at,
        "params": {"call_id": "c1", "control_id": "p1", "state": state},
    }


def call_state(state: str, at: float) -> dict[str, object]:
    return {
        "event_type": "calling.call.state",
        "timestamp": 1_764_201_600.0 + at,
        "params": {"call_id": "c1", "call_state": state, "end_reason": "hangup" if state == ENDED else ""},
    }


def test_the_timeline_judges_an_action_by_its_lifecycle() -> None:
    """Each walk the lifecycle allows is in order; a state after a final one is flagged."""
    tracker = CallTracker(style=Style(False))
    states = ["playing", "paused", "playing", "finished", "playing"]
    events = [call_state("answered", 0), *(play(s, n + 1) for n, s in enumerate(states)), call_state(ENDED, 9)]
    text = "".join(tracker.feed(e) for e in events) + tracker.finish()
    assert text.count("out of order") == 2  # the header's flag, and the play after finished
    assert "play playing after finished" in text


def test_the_summary_counts_a_call_final_at_the_lifecycles_last_state() -> None:
    summary = Summary()
    for n, state in enumerate(CALL.states):
        summary.feed(call_state(state, n))
    lines = summary.lines()
    assert "  ended/hangup  1" in lines and not any("no end state" in line for line in lines)


@pytest.mark.parametrize("lifecycle", ORDERED, ids=lambda lc: lc.name)
def test_the_pretty_line_highlights_each_actions_failures(lifecycle: Lifecycle) -> None:
    printer = make_printer(Format.pretty, Style(True))
    assert printer is not None
    for state in lifecycle.failed:
        payload = {"event_type": lifecycle.event_type, "params": {"call_id": "c1", lifecycle.key: state}}
        assert b"\x1b[1;31m" in printer(payload, None, None)
