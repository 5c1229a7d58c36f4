"""Behaviour of the filter stage: type globs, call ids, --where conditions, errors, and robustness."""

from __future__ import annotations

import json
import re
import string
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_cli.pipeline.filters import (
    CACHE_SIZE,
    KNOWN_EVENT_TYPES,
    REGEX_TEXT_LIMIT,
    AmbiguousCallId,
    Condition,
    EventFilter,
    FilterError,
    call_ids,
    parse_where,
)

DATA = Path(__file__).parent / "data" / "real_frames.jsonl"


def _real_payloads() -> list[dict[str, Any]]:
    payloads: list[dict[str, Any]] = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        data = record["data"]
        if record["kind"] == "payload":
            payloads.append(data)
        elif record["kind"] == "frame" and data.get("method") == "signalwire.event":
            payloads.append(data["params"])
    return payloads


REAL = _real_payloads()


def real(event_type: str, **params: Any) -> dict[str, Any]:
    """The first real payload of this type whose params contain all the given items."""
    for payload in REAL:
        body = payload.get("params", {})
        if payload.get("event_type") == event_type and all(body.get(k) == v for k, v in params.items()):
            return payload
    raise LookupError(f"no real {event_type} payload with {params}")


def event(event_type: Any = "calling.call.state", **params: Any) -> dict[str, Any]:
    return {"event_type": event_type, "timestamp": 1764201234.5, "params": params}


def passing(flt: EventFilter, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in payloads if flt(p)]


def types_passing(flt: EventFilter, event_types: list[str]) -> list[str]:
    return [t for t in event_types if flt(event(t))]


ALL_TYPES = [
    "calling.call.state",
    "calling.call.receive",
    "calling.call.play",
    "calling.call.dial",
    "calling.conference",
    "calling.error",
    "messaging.receive",
    "messaging.state",
    "signalwire.authorization.state",
]


# --- types and exclude -------------------------------------------------------------------------------


def test_no_options_is_inactive_and_lets_everything_through() -> None:
    flt = EventFilter()
    assert flt.active is False
    assert all(flt(p) for p in REAL)
    assert flt({}) is True


def test_predicate_is_the_same_test_as_calling_the_filter() -> None:
    for flt in (
        EventFilter(),
        EventFilter(types=["calling.call.*"], exclude=["*.state"]),
        EventFilter(exclude=["messaging.*"]),
        EventFilter(call_id="call-id"),
        EventFilter(types=["calling.call.play"], where=["params.state=finished"]),
    ):
        assert [flt.predicate(p) for p in REAL] == [flt(p) for p in REAL]
    assert EventFilter().predicate("not a payload")  # type: ignore[arg-type]


def test_each_option_alone_makes_the_filter_active() -> None:
    assert EventFilter(types=["calling.*"]).active
    assert EventFilter(exclude=["calling.*"]).active
    assert EventFilter(call_id="c1").active
    assert EventFilter(where=["params.state=finished"]).active


def test_exact_type_keeps_only_that_type() -> None:
    flt = EventFilter(types=["calling.call.play"])
    kept = passing(flt, REAL)
    assert kept
    assert {p["event_type"] for p in kept} == {"calling.call.play"}
    assert len(kept) == sum(p.get("event_type") == "calling.call.play" for p in REAL)


def test_family_glob_keeps_the_whole_family() -> None:
    assert types_passing(EventFilter(types=["calling.call.*"]), ALL_TYPES) == [
        "calling.call.state",
        "calling.call.receive",
        "calling.call.play",
        "calling.call.dial",
    ]
    assert types_passing(EventFilter(types=["messaging.*"]), ALL_TYPES) == [
        "messaging.receive",
        "messaging.state",
    ]


def test_suffix_glob_matches_across_families() -> None:
    assert types_passing(EventFilter(types=["*.state"]), ALL_TYPES) == [
        "calling.call.state",
        "messaging.state",
        "signalwire.authorization.state",
    ]


def test_glob_star_crosses_dots_like_fnmatch() -> None:
    assert types_passing(EventFilter(types=["calling.*"]), ALL_TYPES) == [t for t in ALL_TYPES if "calling" in t]


def test_character_class_and_question_mark_globs() -> None:
    flt = EventFilter(types=["calling.call.[pd]*", "calling.erro?"])
    assert types_passing(flt, ALL_TYPES) == ["calling.call.play", "calling.call.dial", "calling.error"]


def test_any_of_several_types_passes() -> None:
    flt = EventFilter(types=["calling.call.play", "messaging.*"])
    assert types_passing(flt, ALL_TYPES) == ["calling.call.play", "messaging.receive", "messaging.state"]


def test_type_globs_are_case_sensitive() -> None:
    assert not EventFilter(types=["Calling.Call.Play"])(event("calling.call.play"))
    assert not EventFilter(types=["CALLING.*"])(event("calling.call.play"))


def test_type_glob_is_anchored_at_both_ends() -> None:
    flt = EventFilter(types=["calling.call"])
    assert not flt(event("calling.call.play"))
    assert not flt(event("x.calling.call"))
    assert flt(event("calling.call"))


def test_a_single_string_is_one_glob_not_a_list_of_characters() -> None:
    flt = EventFilter(types="calling.call.play")
    assert flt(event("calling.call.play"))
    assert not flt(event("c"))


def test_glob_for_an_unknown_future_type_is_accepted() -> None:
    flt = EventFilter(types=["calling.call.teleport"])
    assert flt.active
    assert not any(flt(p) for p in REAL)
    assert flt(event("calling.call.teleport"))


def test_exclude_drops_matching_events() -> None:
    flt = EventFilter(exclude=["calling.call.*"])
    assert types_passing(flt, ALL_TYPES) == [t for t in ALL_TYPES if not t.startswith("calling.call.")]


def test_exclude_wins_over_types() -> None:
    flt = EventFilter(types=["calling.*"], exclude=["calling.call.play", "*.dial"])
    assert types_passing(flt, ALL_TYPES) == [
        "calling.call.state",
        "calling.call.receive",
        "calling.conference",
        "calling.error",
    ]
    assert not EventFilter(types=["calling.call.play"], exclude=["calling.call.play"])(event("calling.call.play"))


def test_missing_or_non_string_event_type_counts_as_empty() -> None:
    only_empty = EventFilter(types=["*"], exclude=["?*"])
    payloads: list[dict[str, Any]] = [
        {"params": {}},
        event(None),
        event(5),
        event(["calling.call.play"]),
        event({"a": 1}),
    ]
    for payload in payloads:
        assert only_empty(payload)
        assert not EventFilter(types=["calling.*"])(payload)
        assert EventFilter(exclude=["calling.*"])(payload)


def test_cached_verdicts_stay_right_on_repeats() -> None:
    flt = EventFilter(types=["calling.call.play"])
    for _ in range(3):
        assert types_passing(flt, ALL_TYPES) == ["calling.call.play"]


def test_verdict_cache_is_bounded_under_many_distinct_types() -> None:
    flt = EventFilter(types=["calling.call.play"])
    for i in range(CACHE_SIZE * 3):
        assert not flt(event(f"made.up.{i}"))
    for i in range(CACHE_SIZE * 2):
        assert not flt.predicate(event(f"other.{i}"))
    assert len(flt._verdicts) <= CACHE_SIZE
    assert flt(event("calling.call.play"))
    assert flt.predicate(event("calling.call.play"))


# --- call ids ----------------------------------------------------------------------------------------


def test_call_ids_reads_own_dial_and_peer_ids_in_order() -> None:
    assert call_ids(event(call_id="a", call={"call_id": "b"}, peer={"call_id": "c"})) == ("a", "b", "c")
    assert call_ids(real("calling.call.dial", dial_state="answered")) == ("call-id",)
    assert call_ids(real("calling.call.connect", connect_state="connected", call_id="call-id")) == (
        "call-id",
        "peer-call-id",
    )
    assert call_ids(real("calling.call.state", call_id="peer-call-id")) == ("peer-call-id", "call-id")


def test_call_ids_skips_empty_and_non_string_ids_and_deduplicates() -> None:
    assert call_ids(event(call_id="", call={"call_id": 5}, peer={"call_id": None})) == ()
    assert call_ids(event(call_id="a", peer={"call_id": "a"}, call={"call_id": "b"})) == ("a", "b")
    assert call_ids(event(call="a", peer=["a"])) == ()


def test_call_ids_of_events_without_calls_is_empty() -> None:
    assert call_ids(real("calling.call.dial", dial_state="failed")) == ()


def test_call_ids_of_a_message_is_its_message_id() -> None:
    assert call_ids(real("messaging.state", message_id="145cceb8-d4ed-4056-9696-f6775f950f2e")) == (
        "145cceb8-d4ed-4056-9696-f6775f950f2e",
    )


@pytest.mark.parametrize("payload", [None, "x", 5, [], [{"params": {"call_id": "a"}}], {"params": "x"}, {}])
def test_call_ids_of_malformed_payloads_is_empty(payload: Any) -> None:
    assert call_ids(payload) == ()


def test_call_id_full_match() -> None:
    flt = EventFilter(call_id="7bebef58-e3c0-4dc7-a2c7-a8c2ffc152fc")
    kept = passing(flt, REAL)
    assert [p["event_type"] for p in kept] == ["calling.call.receive"]


def test_call_id_prefix_matches_like_a_short_hash() -> None:
    flt = EventFilter(call_id="7bebef58")
    assert passing(flt, REAL) == passing(EventFilter(call_id="7bebef58-e3c0-4dc7-a2c7-a8c2ffc152fc"), REAL)
    assert not flt(event(call_id="07bebef58"))


def test_call_id_matches_dial_events_through_params_call() -> None:
    dial = real("calling.call.dial", dial_state="answered")
    assert EventFilter(call_id="call-id")(dial)
    assert not EventFilter(call_id="call-id")(real("calling.call.dial", dial_state="failed"))


def test_call_id_matches_connect_peers_and_peer_legs() -> None:
    flt = EventFilter(call_id="peer-call-id")
    assert flt(real("calling.call.connect", connect_state="connected", call_id="call-id"))
    assert flt(real("calling.call.state", call_id="peer-call-id"))
    assert not flt(real("calling.call.play", control_id="mocked-uuid"))
    # the parent call sees its connect-made leg's state events through params.peer
    assert EventFilter(call_id="call-id")(real("calling.call.state", call_id="peer-call-id"))


def test_call_id_does_not_match_events_without_calls_or_malformed_payloads() -> None:
    flt = EventFilter(call_id="c")
    payloads: list[Any] = [real("messaging.receive"), {}, {"params": None}, [], "c1", None, event(call_id=["c1"])]
    for payload in payloads:
        assert not flt(payload)


def test_ambiguous_prefix_stops_the_stream_at_the_second_id() -> None:
    flt = EventFilter(call_id="ab")
    assert [flt(p) for p in [event(call_id="abc-1"), event(call_id="abc-1"), event(call_id="xyz")]] == [
        True,
        True,
        False,
    ]
    with pytest.raises(AmbiguousCallId) as info:
        flt(event(call_id="abd-2"))
    assert info.value.prefix == "ab" and info.value.ids == ["abc-1", "abd-2"]
    assert str(info.value) == "--call-id 'ab' is ambiguous: it matches abc-1, abd-2; give more characters"
    assert isinstance(info.value, FilterError)


def test_ambiguity_calls_the_callback_first_and_raises_even_when_it_returns() -> None:
    calls: list[tuple[str, list[str]]] = []
    flt = EventFilter(call_id="ab", on_ambiguous=lambda prefix, ids: calls.append((prefix, ids)))
    assert flt.predicate(event(call_id="abc-1"))
    with pytest.raises(AmbiguousCallId):
        flt.predicate(event(call_id="abd-2"))
    assert calls == [("ab", ["abc-1", "abd-2"])]


def test_ambiguity_within_one_event_is_an_error() -> None:
    with pytest.raises(AmbiguousCallId, match="it matches c1, c2"):
        EventFilter(call_id="c")(event("calling.call.connect", call_id="c1", peer={"call_id": "c2"}))


def test_an_id_equal_to_the_prefix_never_makes_it_ambiguous() -> None:
    flt = EventFilter(call_id="call-id")
    assert flt(event(call_id="call-id"))
    assert flt(event(call_id="call-id-1"))
    assert flt(event(call_id="call-id"))
    assert [flt(p) for p in REAL] == [bool(set(call_ids(p)) & {"call-id", "call-id-1"}) for p in REAL]


def test_ambiguous_id_quoted_in_the_message_is_cut() -> None:
    flt = EventFilter(call_id="a")
    flt(event(call_id="a" + "x" * 500))
    with pytest.raises(AmbiguousCallId) as info:
        flt(event(call_id="ab"))
    assert len(str(info.value)) < 200 and "…" in str(info.value)


def test_one_call_seen_many_times_is_not_ambiguous() -> None:
    flt = EventFilter(call_id="call-id")
    for _ in range(3):
        assert flt(real("calling.call.play", control_id="mocked-uuid"))
        assert flt(real("calling.call.dial", dial_state="answered"))


def test_repeated_call_ids_match_any_of_them() -> None:
    flt = EventFilter(call_id=["7bebef58", "peer-call-id"])
    kept = {cid for p in passing(flt, REAL) for cid in call_ids(p)}
    assert "7bebef58-e3c0-4dc7-a2c7-a8c2ffc152fc" in kept and "peer-call-id" in kept
    assert not flt(event(call_id="08219786-e1a4-48b1-bda0-e3602c8fc84c"))
    assert EventFilter(call_id="c1")(event(call_id="c1"))  # a bare string is one id


def test_each_repeated_prefix_is_judged_ambiguous_on_its_own() -> None:
    flt = EventFilter(call_id=["ab", "cd"])
    assert flt(event(call_id="ab-1")) and flt(event(call_id="cd-1")) and flt(event(call_id="ab-1"))
    with pytest.raises(AmbiguousCallId, match="'cd' is ambiguous: it matches cd-1, cd-2"):
        flt(event(call_id="cd-2"))


def test_call_id_matches_a_message_by_its_message_id() -> None:
    message = real("messaging.state", message_id="145cceb8-d4ed-4056-9696-f6775f950f2e")
    assert EventFilter(call_id="145cceb8")(message)
    assert not EventFilter(call_id="7bebef58")(message)


def test_call_id_combines_with_types() -> None:
    flt = EventFilter(types=["calling.call.play"], call_id="call-id")
    kept = passing(flt, REAL)
    assert kept
    assert all(p["event_type"] == "calling.call.play" and p["params"]["call_id"] == "call-id" for p in kept)


# --- where -------------------------------------------------------------------------------------------


def test_parse_where_splits_path_operator_and_value() -> None:
    assert parse_where("params.call_state=answered") == Condition(("params", "call_state"), "=", "answered")
    assert parse_where("params.call_state!=ended") == Condition(("params", "call_state"), "!=", "ended")
    assert parse_where("event_type~^calling\\.") == Condition(("event_type",), "~", "^calling\\.")


def test_operator_is_the_first_one_so_values_may_contain_operators() -> None:
    assert parse_where("params.url=https://x/?a=b&c~d") == Condition(("params", "url"), "=", "https://x/?a=b&c~d")
    assert parse_where("params.x!==") == Condition(("params", "x"), "!=", "=")
    assert parse_where("params.x=!=y") == Condition(("params", "x"), "=", "!=y")
    assert parse_where("params.x~a=b") == Condition(("params", "x"), "~", "a=b")
    assert parse_where("params.x=") == Condition(("params", "x"), "=", "")


def test_where_value_containing_equals_matches() -> None:
    flt = EventFilter(where=["params.url=https://example.com/cb?a=1&b=2"])
    assert flt(event(url="https://example.com/cb?a=1&b=2"))
    assert not flt(event(url="https://example.com/cb?a=1"))


def test_where_on_strings() -> None:
    flt = EventFilter(where=["params.call_state=answered"])
    assert flt(real("calling.call.state", call_state="answered"))
    assert not flt(real("calling.call.state", call_state="created"))
    assert EventFilter(where=["event_type=messaging.state"])(real("messaging.state"))


def test_where_string_comparison_is_exact() -> None:
    assert not EventFilter(where=["params.state=Finished"])(event(state="finished"))
    assert not EventFilter(where=["params.state=finished"])(event(state="finished "))
    assert EventFilter(where=["params.state= finished"])(event(state=" finished"))


def test_where_string_that_looks_like_a_number_compares_as_text() -> None:
    assert EventFilter(where=["params.device.params.port=5000"])(event(device={"params": {"port": "5000"}}))
    assert EventFilter(where=["params.sip_refer_response_code=202"])(real("calling.call.refer"))
    assert not EventFilter(where=["params.device.params.port=5000"])(event(device={"params": {"port": "05000"}}))


def test_where_on_numbers_uses_json_spelling() -> None:
    assert EventFilter(where=["params.size=4096"])(real("calling.call.record", url="record.mp3"))
    assert EventFilter(where=["params.position=1"])(real("calling.call.queue", status="enqueue"))
    assert EventFilter(where=["params.duration=30.0"])(real("calling.call.transcribe"))
    assert not EventFilter(where=["params.duration=30"])(real("calling.call.transcribe"))
    assert EventFilter(where=["params.result.params.confidence=0.95"])(
        real(
            "calling.call.collect",
            node_id="xxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            result={"type": "speech", "params": {"text": "one", "confidence": 0.95}},
        )
    )
    assert EventFilter(where=["params.x=-7"])(event(x=-7))
    assert EventFilter(where=["params.x~^1\\.5$"])(event(x=1.5))


def test_where_on_booleans_uses_json_spelling() -> None:
    assert EventFilter(where=["params.denoised=true"])(real("calling.call.denoise"))
    assert not EventFilter(where=["params.denoised=True"])(real("calling.call.denoise"))
    assert EventFilter(where=["params.muted=false"])(real("calling.conference", status="participant-join"))
    assert EventFilter(where=["params.x!=true"])(event(x="True"))


def test_where_on_null_uses_json_spelling() -> None:
    assert EventFilter(where=["params.tag=null"])(
        real("messaging.state", message_id="145cceb8-d4ed-4056-9696-f6775f950f2e")
    )
    assert not EventFilter(where=["params.tag=None"])(event(tag=None))
    assert EventFilter(where=["params.tag!=null"])(event(tag="null-ish"))


def test_where_on_objects_and_arrays_uses_compact_json() -> None:
    assert EventFilter(where=['params.peer={"call_id":"c2","node_id":"n"}'])(
        event(peer={"call_id": "c2", "node_id": "n"})
    )
    assert EventFilter(where=["params.media=[]"])(
        real("messaging.state", message_id="145cceb8-d4ed-4056-9696-f6775f950f2e")
    )
    assert EventFilter(where=['params.tags~"inbound"'])(real("messaging.receive"))
    assert EventFilter(where=['params.x=["é",1,null]'])(event(x=["é", 1, None]))


def test_a_single_where_string_is_one_condition() -> None:
    flt = EventFilter(where="params.state=finished")
    assert flt(event(state="finished"))
    assert not flt(event(state="playing"))


def test_where_on_nested_paths() -> None:
    receive = real("calling.call.receive", call_id="7bebef58-e3c0-4dc7-a2c7-a8c2ffc152fc")
    assert EventFilter(where=["params.device.params.to_number=+16672286294"])(receive)
    assert EventFilter(where=["params.device.type=phone", "params.direction=inbound"])(receive)
    assert not EventFilter(where=["params.device.type=sip"])(receive)
    assert EventFilter(where=["params.detect.params.beep=true"])(
        real("calling.call.detect", segment_id="xxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    )


def test_where_list_index() -> None:
    payload = event("messaging.receive", media=["https://a/1.png", "https://a/2.png"], rows=[[1, 2], {"k": "v"}])
    assert EventFilter(where=["params.media.0=https://a/1.png"])(payload)
    assert EventFilter(where=["params.media.1~2\\.png$"])(payload)
    assert EventFilter(where=["params.rows.0.1=2"])(payload)
    assert EventFilter(where=["params.rows.1.k=v"])(payload)
    assert not EventFilter(where=["params.media.2=https://a/1.png"])(payload)
    assert EventFilter(where=["params.media.2!=x"])(payload)
    assert not EventFilter(where=["params.media.first~."])(payload)
    assert not EventFilter(where=["params.media.-1~."])(payload)


def test_where_digit_segment_is_a_key_in_objects() -> None:
    assert EventFilter(where=["params.codes.0=x"])(event(codes={"0": "x"}))


def test_where_top_level_fields() -> None:
    payload = real("calling.call.receive", call_id="7bebef58-e3c0-4dc7-a2c7-a8c2ffc152fc")
    assert EventFilter(where=["context=test-golang"])(payload)
    assert EventFilter(where=["timestamp~^1568920048\\."])(payload)
    assert EventFilter(where=["event_channel~^signalwire_"])(payload)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("params.missing=x", False),
        ("params.missing=", False),
        ("params.missing!=x", True),
        ("params.missing!=", True),
        ("params.missing~", False),
        ("params.missing~.*", False),
        ("params.state.deeper=x", False),
        ("params.state.deeper!=x", True),
        ("params.state.deeper~.", False),
        ("nothing.at.all!=x", True),
    ],
)
def test_where_missing_path_for_each_operator(expr: str, expected: bool) -> None:
    assert EventFilter(where=[expr])(event(state="finished")) is expected


def test_where_not_equal_on_present_value() -> None:
    flt = EventFilter(where=["params.state!=finished"])
    assert not flt(event(state="finished"))
    assert flt(event(state="playing"))


def test_where_regex_searches_anywhere_in_the_text() -> None:
    flt = EventFilter(where=["params.body~Welcome"])
    assert flt(real("messaging.receive"))
    assert not EventFilter(where=["params.body~^SignalWire"])(real("messaging.receive"))
    assert EventFilter(where=["params.state~"])(event(state=""))


def test_all_where_conditions_must_hold() -> None:
    flt = EventFilter(where=["params.state=finished", "params.control_id~^mocked"])
    assert flt(real("calling.call.play", control_id="mocked-uuid"))
    assert not flt(real("calling.call.play", control_id="control-id"))


@pytest.mark.parametrize("payload", [None, "text", 5, [], [1, 2], {"params": "x"}, {"params": None}])
def test_where_on_malformed_payloads_sees_an_absent_path(payload: Any) -> None:
    assert not EventFilter(where=["params.state=x"])(payload)
    assert not EventFilter(where=["params.state~."])(payload)
    assert EventFilter(where=["params.state!=x"])(payload)


def test_where_on_values_without_json_spelling_never_equal() -> None:
    assert not Condition(("params", "x"), "=", "")({"params": {"x": object()}})
    assert Condition(("params", "x"), "!=", "")({"params": {"x": object()}})
    assert not Condition(("params", "x"), "~", "")({"params": {"x": object()}})


def test_condition_built_directly_compiles_its_regex() -> None:
    cond = Condition(("params", "state"), "~", "^fin")
    assert cond.pattern is not None
    assert cond(event(state="finished"))


# --- errors ------------------------------------------------------------------------------------------


def error_of(**options: Any) -> str:
    with pytest.raises(FilterError) as info:
        EventFilter(**options)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)


def test_empty_type_glob_is_an_error() -> None:
    assert error_of(types=["calling.*", ""]) == (
        "--type '': empty pattern; give an event type or a glob such as 'calling.call.*'"
    )
    assert error_of(types=["  "]).startswith("--type '  ': empty pattern")


def test_empty_exclude_glob_is_an_error() -> None:
    assert error_of(exclude=[""]) == (
        "--exclude '': empty pattern; give an event type or a glob such as 'calling.call.*'"
    )


def test_empty_call_id_is_an_error() -> None:
    assert error_of(call_id="") == "--call-id '': empty call id; give a call id or its first few characters"
    assert error_of(call_id=" ").startswith("--call-id ' ': empty call id")


def test_where_without_operator_is_an_error() -> None:
    assert error_of(where=["params.state"]) == (
        "--where 'params.state': expected PATH=VALUE, PATH!=VALUE or PATH~REGEX"
    )
    assert error_of(where=[""]) == "--where '': expected PATH=VALUE, PATH!=VALUE or PATH~REGEX"
    assert error_of(where=["params.state!finished"]).startswith("--where 'params.state!finished': expected")


@pytest.mark.parametrize("expr", ["=x", "!=x", "~x", "="])
def test_where_with_empty_path_is_an_error(expr: str) -> None:
    op = re.match(r"!=|=|~", expr)
    assert op is not None
    assert error_of(where=[expr]) == f"--where '{expr}': empty path before '{op.group()}'"


@pytest.mark.parametrize(("expr", "path"), [("params..x=1", "params..x"), (".x=1", ".x"), ("params.=1", "params.")])
def test_where_with_empty_path_segment_is_an_error(expr: str, path: str) -> None:
    assert error_of(where=[expr]) == (
        f"--where '{expr}': empty segment in path '{path}'"
        " (write PATH as names and list indexes joined by single dots, e.g. params.media.0)"
    )


def test_where_with_invalid_regex_says_the_regex_error() -> None:
    assert error_of(where=["params.state~(fin"]) == (
        "--where 'params.state~(fin': invalid regular expression '(fin':"
        " missing ), unterminated subpattern at position 0"
    )
    assert "repetition number is too large" in error_of(where=["params.x~a{99999999999}"])
    assert "nothing to repeat" in error_of(where=["params.x~*"])


def test_error_messages_stay_on_one_line_for_odd_values() -> None:
    message = error_of(where=["params.x\nstate"])
    assert message.startswith("--where 'params.x\\nstate': expected")
    assert "'it'\"s'" not in error_of(types=[""])
    assert error_of(where=["it's"]).startswith('--where "it\'s": expected')


def test_condition_rejects_unknown_operator() -> None:
    with pytest.raises(FilterError, match="expected PATH=VALUE"):
        Condition(("params", "x"), ">", "1")  # type: ignore[arg-type]


def test_first_bad_option_fails_the_whole_filter() -> None:
    with pytest.raises(FilterError, match="--where"):
        EventFilter(types=["calling.*"], where=["params.state=ok", "oops"])


# --- warnings about values that match nothing RELAY sends -------------------------------------------


def test_known_event_types_are_the_sdks_and_the_protocols() -> None:
    assert len(KNOWN_EVENT_TYPES) == 24
    assert "signalwire.authorization.state" in KNOWN_EVENT_TYPES and "calling.call.play" in KNOWN_EVENT_TYPES


@pytest.mark.parametrize(
    ("glob", "nearest"),
    [
        ("calling.call.plya", "calling.call.play"),
        ("play", "calling.call.play"),
        ("state", "*.state"),
        ("messaging.recieve", "messaging.receive"),
        ("calling.call.teleport", None),
    ],
)
def test_a_type_glob_matching_no_known_type_warns_naming_the_nearest(glob: str, nearest: str | None) -> None:
    (warning,) = EventFilter(types=[glob]).warnings
    assert warning.startswith(f"--type '{glob}' matches no known event type (did you mean '")
    if nearest is not None:
        assert warning.endswith(f"(did you mean '{nearest}'?)")


def test_an_exclude_glob_matching_no_known_type_warns_too() -> None:
    assert EventFilter(exclude=["calling.call.plya"]).warnings == (
        "--exclude 'calling.call.plya' matches no known event type (did you mean 'calling.call.play'?)",
    )


@pytest.mark.parametrize(
    "glob", ["calling.call.play", "calling.*", "*.state", "signalwire.*", "signalwire.authorization.state", "*"]
)
def test_globs_matching_a_known_type_do_not_warn(glob: str) -> None:
    assert EventFilter(types=[glob], exclude=[glob]).warnings == ()


def test_where_path_outside_the_payload_keys_warns_with_the_params_spelling() -> None:
    assert EventFilter(where=["call_state=ended"]).warnings == (
        "--where 'call_state=ended': an event has no top-level 'call_state' (it has event_type, event_channel,"
        " timestamp, project_id, space_id, context, params); did you mean 'params.call_state=ended'?",
    )


@pytest.mark.parametrize(
    "expr", ["params.call_state=ended", "event_type~^calling", "timestamp!=0", "context=office", "event_channel~x"]
)
def test_where_paths_under_payload_keys_do_not_warn(expr: str) -> None:
    assert EventFilter(where=[expr]).warnings == ()


def test_a_call_id_no_uuid_starts_with_warns() -> None:
    assert EventFilter(call_id=["zzzz", "8d19"]).warnings == (
        "--call-id 'zzzz': RELAY call and message ids are UUIDs (hex digits and dashes), so this can match only"
        " ids of another shape",
    )
    assert EventFilter(call_id="7BEBEF58-e3c0").warnings == ()


def test_double_equals_is_taken_as_equals() -> None:
    assert parse_where("params.call_state==ended") == Condition(("params", "call_state"), "=", "ended")
    assert EventFilter(where=["params.call_state==ended"])(event(call_state="ended"))
    assert parse_where("params.x!==") == Condition(("params", "x"), "!=", "=")
    assert EventFilter(where=["params.x~^="])(event(x="=y"))


# --- bounded regexes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("regex", ["(a+)+$", "(a*)*b", "(a|ab)*c", "(foo|bar)+", "(\\w+\\s?)+$", "((ab)+)*"])
def test_a_regex_repeating_what_itself_varies_is_refused(regex: str) -> None:
    assert error_of(where=[f"params.body~{regex}"]) == (
        f"--where 'params.body~{regex}': regex refused: it repeats a group that itself repeats or has alternatives"
        " (like (a+)+ or (a|ab)*), which can take minutes on one event; repeat a single character or class instead"
    )


@pytest.mark.parametrize("regex", ["a*a*x", "foo.*bar.*baz", ".*x.*y", "\\s*\\S+\\s*x"])
def test_a_regex_with_open_ended_repetitions_in_a_row_is_refused(regex: str) -> None:
    message = error_of(where=[f"params.body~{regex}"])
    assert message.startswith(f"--where 'params.body~{regex}': regex refused: its open-ended repetitions in a row")
    assert message.endswith(
        f"on one {REGEX_TEXT_LIMIT}-character value; anchor it with ^, bound them ({{1,20}}),"
        " or split it into several --where conditions"
    )


@pytest.mark.parametrize(
    "regex",
    [
        "^calling\\.",
        "ended|failed",
        "(?i)welcome",
        ".*x",
        "foo.*bar",
        "^foo.*bar.*baz",
        "\\d+-\\d+-\\d+",
        "https?://.*\\.mp3$",
        "\\w+@\\w+\\.com",
        "[a-z]+[0-9]+x",
        "(?:ab)+c",
        "a{1,50}a{1,50}x",
        "^\\+1\\d{10}$",
        "(\\w+) \\1",
        "(?=.*x)y",
        "(a)(?(1)b|c)",
        "x*y*z*w",
        "(?>a+)b",
        "a++b",
        "",
    ],
)
def test_everyday_regexes_are_accepted(regex: str) -> None:
    assert EventFilter(where=[f"params.body~{regex}"]).active


def test_regex_sees_only_the_first_characters_of_a_long_value() -> None:
    flt = EventFilter(where=["params.body~STOP"])
    assert flt(event(body="x" * (REGEX_TEXT_LIMIT - 4) + "STOP"))
    assert not flt(event(body="x" * (REGEX_TEXT_LIMIT - 3) + "STOP"))
    assert EventFilter(where=["params.body=" + "x" * 5000])(event(body="x" * 5000))


REGEX_PIECES = st.sampled_from(
    [
        "a",
        "b",
        ".",
        "\\d",
        "[a-c]",
        "[^a]",
        "x",
        "^",
        "$",
        "\\b",
        "(",
        ")",
        "(?:",
        "|",
        "*",
        "+",
        "?",
        "{1,3}",
        "*?",
        "++",
        "(?=",
        "(?!",
        "(?>",
        "\\1",
        "(?i)",
        "(?m)",
        "{2}",
    ]
)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(REGEX_PIECES, max_size=12))
def test_any_regex_is_either_accepted_or_refused_with_a_filter_error(pieces: list[str]) -> None:
    regex = "".join(pieces)
    try:
        re.compile(regex)
    except re.error:
        return
    try:
        flt = EventFilter(where=[f"params.x~{regex}"])
    except FilterError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(flt(event(x="ab1x" * 10)), bool)


# --- robustness --------------------------------------------------------------------------------------

KEYS = st.sampled_from(["event_type", "params", "call_id", "call", "peer", "state", "media", "0", "1"]) | st.text(
    max_size=5
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)
EVENT_TYPES = st.sampled_from(ALL_TYPES) | st.text(max_size=20)
PAYLOADS = (
    JSON
    | st.fixed_dictionaries({"event_type": EVENT_TYPES | JSON, "params": JSON})
    | st.fixed_dictionaries(
        {
            "event_type": EVENT_TYPES,
            "params": st.fixed_dictionaries(
                {"call_id": st.text(alphabet="abc", max_size=3) | JSON},
                optional={
                    "call": JSON | st.fixed_dictionaries({"call_id": JSON}),
                    "peer": JSON | st.fixed_dictionaries({"call_id": st.text(alphabet="abc", max_size=3)}),
                },
            ),
        }
    )
)
GLOBS = st.sampled_from(["calling.call.*", "*.state", "messaging.state", "*", "?", "[a-", "[!]]", "\\"]) | st.text(
    min_size=1, max_size=8
).filter(str.strip)
SEGMENT = st.sampled_from(["params", "event_type", "call_id", "state", "0", "1", "99999999999999999999999"]) | st.text(
    alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=6
)
PATHS = st.lists(SEGMENT, min_size=1, max_size=4).map(".".join)
WHERE = st.builds(
    lambda path, op, value: f"{path}{op}{value}",
    PATHS,
    st.sampled_from(["=", "!="]),
    st.text(max_size=8),
) | st.builds(
    lambda path, regex: f"{path}~{regex}",
    PATHS,
    st.sampled_from(["", ".", "^a", "b$", "a|c", "[0-9]+", "(?i)CALL", '"x"']) | st.text(max_size=8).map(re.escape),
)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(PAYLOADS, min_size=1, max_size=8),
    types=st.lists(GLOBS, max_size=3),
    exclude=st.lists(GLOBS, max_size=2),
    call_id=st.none() | st.text(alphabet="abc", min_size=1, max_size=2),
    where=st.lists(WHERE, max_size=3),
)
def test_event_filter_never_raises_on_arbitrary_payloads(
    payloads: list[Any], types: list[str], exclude: list[str], call_id: str | None, where: list[str]
) -> None:
    flt = EventFilter(types=types, exclude=exclude, call_id=call_id, where=where)
    try:
        for payload in payloads * 2:
            verdict = flt(payload)
            assert isinstance(verdict, bool)
            assert flt.predicate(payload) is verdict
            assert all(isinstance(cid, str) and cid for cid in call_ids(payload))
    except AmbiguousCallId as exc:
        assert call_id is not None and exc.prefix == call_id
        first, second = exc.ids
        assert first != second and all(i.startswith(call_id) and i != call_id for i in exc.ids)


@settings(max_examples=200, deadline=None)
@given(payload=PAYLOADS, types=st.lists(GLOBS, min_size=1, max_size=3), exclude=st.lists(GLOBS, max_size=2))
def test_type_verdict_agrees_with_fnmatchcase(payload: Any, types: list[str], exclude: list[str]) -> None:
    raw = payload.get("event_type") if isinstance(payload, dict) else None
    event_type = raw if isinstance(raw, str) else ""
    expected = any(fnmatchcase(event_type, g) for g in types) and not any(fnmatchcase(event_type, g) for g in exclude)
    flt = EventFilter(types=types, exclude=exclude)
    assert flt(payload) is expected
    assert flt(payload) is expected
    assert flt.predicate(payload) is expected


@given(value=JSON)
def test_where_equals_round_trips_the_compact_json_of_any_value(value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert Condition(("params", "x"), "=", text)({"params": {"x": value}})
    assert not Condition(("params", "x"), "!=", text)({"params": {"x": value}})
