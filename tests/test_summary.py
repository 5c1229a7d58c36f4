"""Behaviour of the replay summary: counts, final states, durations, messages, time span and robustness."""

from __future__ import annotations

import string
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_cli.emulator.flows import EVENT_TYPES, DemoTraffic
from relay_cli.lifecycles import ANSWERED, CALL, ENDED, INBOUND_MESSAGE, MESSAGE
from relay_cli.views.summary import Summary, nearest_rank, span_text

T0 = 1_764_201_600.0  # 2025-11-27T00:00:00Z


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local ISO times are printed in the local zone; pin it so the expected text holds anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def ev(event_type: str, at: float | None = 0.0, **params: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"event_type": event_type, "params": params}
    if at is not None:
        payload["timestamp"] = T0 + at
    return payload


def state(call_id: str, call_state: str, at: float | None = 0.0, **extra: Any) -> dict[str, Any]:
    return ev("calling.call.state", at, call_id=call_id, call_state=call_state, **extra)


def message(message_id: str, message_state: str, **extra: Any) -> dict[str, Any]:
    return ev("messaging.state", 0.0, message_id=message_id, message_state=message_state, **extra)


def section(lines: list[str], title: str) -> list[str]:
    """The indented rows under the line starting with ``title``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        rows.append(line)
    return rows


def fed(payloads: list[Any]) -> Summary:
    summary = Summary()
    for payload in payloads:
        summary.feed(payload)
    return summary


def test_events_are_counted_by_type_most_frequent_first_and_aligned() -> None:
    payloads = [ev("calling.call.play")] * 3 + [ev("messaging.state")] * 12 + [ev("calling.error")]
    payloads += [{"event_type": 7, "params": {}}, {"params": {}}]
    lines = fed(payloads).lines()
    assert lines[0] == "events by type (18)"
    assert section(lines, "events by type") == [
        "  messaging.state    12",
        "  calling.call.play   3",
        "  ?                   2",
        "  calling.error       1",
    ]


def test_calls_are_counted_by_final_state_and_end_reason() -> None:
    payloads = [
        state("a", "created"),
        state("a", "ended", end_reason="hangup"),
        state("b", "answered"),
        state("b", "ending", end_reason="busy"),
        state("b", "ended"),
        state("c", "ended", end_reason="hangup"),
        ev("calling.call.receive", call_id="d", call_state="created"),
        state("e", "ended"),
        state("a", "ended", end_reason="hangup"),
        state("a", "ringing"),
        ev("calling.call.play", call_id="f", state="playing"),
    ]
    assert section(fed(payloads).lines(), "calls by final state (5)") == [
        "  ended/hangup  2",
        "  ended/busy    1",
        "  ended         1",
        "  no end state  1",
    ]


def test_call_durations_from_answered_to_ended_use_nearest_rank_percentiles() -> None:
    payloads: list[dict[str, Any]] = []
    for n in range(1, 101):
        payloads += [state(f"c{n}", "answered", 1000.0 * n), state(f"c{n}", "ended", 1000.0 * n + n)]
    payloads += [state("never-answered", "created"), state("never-answered", "ended", 5000.0)]
    payloads += [state("untimed", "answered", None), state("untimed", "ended", 9.0)]
    lines = fed(payloads).lines()
    assert section(lines, "call duration, answered to ended (100 calls)") == [
        "  p50 50.000s  p90 90.000s  p99 99.000s  max 100.000s"
    ]


def test_nearest_rank_is_the_smallest_value_with_that_share_at_or_below_it() -> None:
    ordered = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [nearest_rank(ordered, p) for p in (5, 30, 40, 50, 100)] == [15.0, 20.0, 20.0, 35.0, 50.0]
    assert nearest_rank([3.0], 99) == 3.0


def test_no_duration_line_without_answered_calls() -> None:
    lines = fed([state("a", "created"), state("a", "ended", 3.0, end_reason="cancel")]).lines()
    assert not any(line.startswith("call duration") for line in lines)


def test_messages_are_counted_by_final_state_with_the_top_three_reasons() -> None:
    payloads = [message(f"d{n}", "queued") for n in range(3)] + [message(f"d{n}", "delivered") for n in range(3)]
    reasons = ["Carrier rejected"] * 3 + ["Unknown error"] * 2 + ["Message filtered", "Unreachable destination"]
    payloads += [message(f"f{n}", "failed", reason=reason) for n, reason in enumerate(reasons)]
    payloads += [message("u", "undelivered", reason="Carrier rejected"), message("p", "sent")]
    payloads += [ev("messaging.receive", message_id="r", message_state="received")]
    payloads += [message("d0", "delivered")]
    assert section(fed(payloads).lines(), "messages by final state (13)") == [
        "  failed          7  (reasons: Carrier rejected 3, Unknown error 2, Message filtered 1, 1 more)",
        "  delivered       3",
        "  undelivered     1  (reasons: Carrier rejected 1)",
        "  received        1",
        "  no final state  1",
    ]


def test_the_time_span_covers_the_earliest_to_the_latest_event_in_local_time() -> None:
    late = ev("calling.call.play", None)
    late["timestamp"] = str(T0 + 3723.456)
    in_params = ev("calling.call.play", None, timestamp=T0 + 10)
    early = ev("calling.call.play", 0.0)
    untimed = ev("calling.call.play", None)
    lines = fed([in_params, late, early, untimed]).lines()
    assert section(lines, "time span") == [
        "  2025-11-27T00:00:00.000+00:00 → 2025-11-27T01:02:03.456+00:00  (1h 2m 3.456s)"
    ]
    assert span_text(59.5) == "59.500s"
    assert span_text(61.0) == "1m 1.000s"


def test_malformed_lines_are_counted() -> None:
    summary = Summary()
    summary.malformed()
    summary.malformed(4)
    assert summary.lines()[-1] == "malformed lines 5"
    assert Summary().lines() == ["no events", "malformed lines 0"]


def test_event_types_from_the_wire_are_escaped() -> None:
    lines = fed([{"event_type": "evil\x1b[2J", "params": {}}]).lines()
    assert "\x1b" not in "".join(lines)
    assert "  evil\\x1b[2J  1" in lines


def test_demo_traffic_forgets_calls_as_they_end() -> None:
    payloads = list(islice(DemoTraffic(seed=1, contexts=("office",), start=T0), 50_000))
    summary = fed(payloads)
    lines = summary.lines()
    assert lines[0] == "events by type (50000)"
    calls = dict(line.split() for line in section(lines, "calls by final state") if "no end" not in line)
    assert int(calls["ended/hangup"]) > 1_000
    unfinished = [line for line in lines if line.startswith("  no end state")]
    assert len(unfinished) == 1 and int(unfinished[0].split()[-1]) < 40


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "call_id": st.sampled_from(["a", "b"]) | JSON,
        "message_id": st.sampled_from(["a", "b"]) | JSON,
        "call_state": st.sampled_from(["created", "answered", "ending", "ended"]) | JSON,
        "end_reason": JSON,
        "message_state": st.sampled_from(["queued", "failed", "delivered"]) | JSON,
        "reason": JSON,
        "timestamp": JSON,
    },
)
PAYLOADS = JSON | st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from(EVENT_TYPES) | st.text(alphabet=string.printable, max_size=10) | JSON,
        "params": PARAMS | JSON,
        "timestamp": JSON | st.floats(-1e300, 1e300),
    },
)


@settings(max_examples=300, deadline=None, derandomize=True)  # the same examples every run
@given(payloads=st.lists(PAYLOADS, max_size=12))
def test_odd_payloads_never_raise(payloads: list[Any]) -> None:
    summary = fed(payloads * 2)
    lines = summary.lines()
    assert all(isinstance(line, str) for line in lines)
    assert lines[-1] == "malformed lines 0"


def test_ids_and_reasons_of_200_kb_are_held_short() -> None:
    summary = Summary()
    for n in range(20):
        call_id = f"{n:04d}" + "x" * 200_000
        summary.feed({"event_type": "calling.call.state", "params": {"call_id": call_id, "call_state": "created"}})
    long_reason = "r" * 200_000
    summary.feed(
        {
            "event_type": "calling.call.state",
            "params": {"call_id": "e", "call_state": "ended", "end_reason": long_reason},
        }
    )
    assert max(map(len, summary._calls)) < 100
    assert max(map(len, summary._finals)) < 100
    assert ["no", "end", "state", "20"] in [line.split() for line in summary.lines()]


def test_made_up_event_types_are_counted_together_past_a_bound() -> None:
    summary = Summary()
    for n in range(5_000):
        summary.feed({"event_type": f"made.up.{n}", "params": {}})
    summary.feed({"event_type": "t" * 200_000, "params": {}})
    assert len(summary._types) == 1_025 and max(map(len, summary._types)) < 100
    lines = summary.lines()
    assert lines[0] == "events by type (5001)" and any(line.split()[:2] == ["(other)", "3977"] for line in lines)


# -- the lifecycles it reads ----------------------------------------------------------------------------


def test_every_final_message_state_of_the_lifecycles_ends_a_message_and_no_other_does() -> None:
    finals = [*MESSAGE.final, *INBOUND_MESSAGE.final]
    events = [message(f"m{n}", final) for n, final in enumerate(finals)]
    events += [message(f"open{n}", step) for n, step in enumerate(MESSAGE.states) if step not in finals]
    rows = section(fed(events).lines(), "messages by final state")
    assert sorted(row.split()[0] for row in rows if not row.startswith("  no final")) == sorted(finals)
    assert f"  no final state  {len(MESSAGE.states) - len(MESSAGE.final)}" in rows


def test_a_call_is_final_only_at_the_last_state_of_its_lifecycle_and_lasts_from_answered() -> None:
    events = [state("c1", call_state, at=n) for n, call_state in enumerate(CALL.states)]
    events += [state("c2", call_state, at=n) for n, call_state in enumerate(CALL.states[:-1])]
    lines = fed(events).lines()
    assert section(lines, "calls by final state") == ["  ended         1", "  no end state  1"]
    duration = CALL.rank[ENDED] - CALL.rank[ANSWERED]
    assert section(lines, "call duration")[0].startswith(f"  p50 {duration:.3f}s")
