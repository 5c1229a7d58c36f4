"""FrameFilter: which frames of a two-way conversation `relay proxy` and `replay --frames` show."""

from __future__ import annotations

from typing import Any

import pytest

from relay_cli.pipeline.filters import AmbiguousCallId, FilterError, FrameFilter
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, Kind

CALL = "8d19821f-0000-4000-8000-000000000001"
OTHER = "5d4c3b2a-0000-4000-8000-000000000002"


def event(event_type: str = "calling.call.state", call: str = CALL, **params: Any) -> dict[str, Any]:
    payload = {"event_type": event_type, "params": {"call_id": call, **params}}
    return {"jsonrpc": "2.0", "id": "e", "method": "signalwire.event", "params": payload}


def request(method: str = "calling.play", call: str = CALL) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": "r", "method": method, "params": {"call_id": call}}


def shows(flt: FrameFilter, frame: dict[str, Any], direction: str | None = None) -> bool:
    kind = Kind.EVENT if frame["method"] == "signalwire.event" else Kind.REQUEST
    return flt.accepts(direction or (RELAY_TO_APP if kind is Kind.EVENT else APP_TO_RELAY), kind, frame)


def test_no_options_show_everything_and_are_inactive() -> None:
    flt = FrameFilter()
    assert not flt.active and flt.warnings == ()
    assert shows(flt, event()) and shows(flt, request())
    assert flt.accepts_answer(RELAY_TO_APP, None) and flt.accepts(APP_TO_RELAY, None, None)


def test_method_globs_select_requests_and_hide_events() -> None:
    flt = FrameFilter(methods=["calling.play*", "messaging.*"])
    assert flt.active
    assert shows(flt, request("calling.play")) and shows(flt, request("calling.play_and_collect"))
    assert shows(flt, request("messaging.send"))
    assert not shows(flt, request("calling.answer"))
    assert not shows(flt, event())


def test_events_count_as_method_signalwire_event() -> None:
    flt = FrameFilter(methods="signalwire.*")
    assert shows(flt, event()) and shows(flt, request("signalwire.connect")) and not shows(flt, request())


def test_type_globs_select_events_and_hide_requests() -> None:
    flt = FrameFilter(types="calling.call.state")
    assert shows(flt, event("calling.call.state")) and not shows(flt, event("calling.call.play"))
    assert not shows(flt, request("calling.play"))


def test_where_selects_events() -> None:
    flt = FrameFilter(where="params.call_state=ended")
    assert shows(flt, event(call_state="ended")) and not shows(flt, event(call_state="answered"))
    assert not shows(flt, request())


def test_both_kinds_of_selector_show_what_either_selects() -> None:
    flt = FrameFilter(types="calling.call.play", methods="calling.play")
    assert shows(flt, event("calling.call.play")) and shows(flt, request("calling.play"))
    assert not shows(flt, event("calling.call.state")) and not shows(flt, request("calling.answer"))


def test_exclude_narrows_events_whatever_selected_them() -> None:
    flt = FrameFilter(methods="signalwire.event", exclude="calling.call.state")
    assert not shows(flt, event("calling.call.state")) and shows(flt, event("calling.call.play"))
    alone = FrameFilter(exclude="calling.call.state")
    assert not shows(alone, event()) and shows(alone, request())


def test_call_id_narrows_requests_and_events_by_prefix() -> None:
    flt = FrameFilter(call_id="8d19")
    assert shows(flt, event(call=CALL)) and shows(flt, request(call=CALL))
    assert not shows(flt, event(call=OTHER)) and not shows(flt, request(call=OTHER))
    assert not shows(flt, request("signalwire.connect", call=""))
    linked = event("calling.call.connect", call=OTHER, peer={"call_id": CALL})
    assert shows(flt, linked)


def test_a_call_id_prefix_matching_two_ids_is_ambiguous() -> None:
    flt = FrameFilter(call_id="8d19")
    assert shows(flt, request(call=CALL))
    with pytest.raises(AmbiguousCallId, match="--call-id '8d19' is ambiguous"):
        shows(flt, event(call="8d19ffff-0000"))


def test_direction_narrows_everything_and_takes_short_forms() -> None:
    for value in ("app>relay", "app", " APP "):
        flt = FrameFilter(direction=value)
        assert shows(flt, request()) and not shows(flt, event())
        assert flt.accepts_answer(APP_TO_RELAY, True) and not flt.accepts_answer(RELAY_TO_APP, True)
        assert flt.accepts(APP_TO_RELAY, None, None) and not flt.accepts(RELAY_TO_APP, None, None)
    assert shows(FrameFilter(direction="relay"), event())


def test_answers_follow_their_request_and_unpaired_ones_only_an_unselective_filter() -> None:
    flt = FrameFilter(methods="calling.play", direction="relay>app")
    assert flt.accepts_answer(RELAY_TO_APP, True) and not flt.accepts_answer(RELAY_TO_APP, False)
    assert not flt.accepts_answer(RELAY_TO_APP, None)
    assert FrameFilter(direction="relay>app").accepts_answer(RELAY_TO_APP, None)
    assert not flt.accepts(RELAY_TO_APP, Kind.RESULT, {"id": "x", "result": {}})


def test_selectors_combined_with_narrowing() -> None:
    flt = FrameFilter(types="calling.call.*", methods="calling.*", call_id=CALL, direction="relay")
    assert shows(flt, event("calling.call.state", call=CALL))
    assert not shows(flt, event("calling.call.state", call=OTHER))
    assert not shows(flt, request("calling.play", call=CALL))  # from the app: the other direction
    assert shows(flt, request("calling.play", call=CALL), direction=RELAY_TO_APP)


def test_frames_that_are_not_json_rpc_are_hidden_only_by_direction() -> None:
    flt = FrameFilter(methods="calling.play", call_id="8d19")
    assert flt.accepts(APP_TO_RELAY, None, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methods": ""}, "--method '': empty pattern; give a method or a glob such as 'calling.*'"),
        ({"methods": ["calling.*", " "]}, "--method ' ': empty pattern"),
        ({"direction": "up"}, "--direction 'up': expected app>relay (or app) or relay>app (or relay)"),
        ({"direction": ""}, "--direction '': expected"),
        ({"types": ""}, "--type '': empty pattern"),
        ({"where": "params.x"}, "--where 'params.x': expected PATH=VALUE"),
        ({"call_id": " "}, "--call-id ' ': empty call id"),
    ],
)
def test_bad_values_name_their_option_in_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError) as caught:
        FrameFilter(**options)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_warnings_are_the_event_filters() -> None:
    flt = FrameFilter(types="calling.call.stat", exclude="nothing.like.it", where="call_state=x", call_id="zz")
    warnings = " | ".join(flt.warnings)
    assert "--type 'calling.call.stat' matches no known event type" in warnings
    assert "--exclude 'nothing.like.it' matches no known event type" in warnings
    assert "--where 'call_state=x'" in warnings and "--call-id 'zz'" in warnings
    assert FrameFilter(methods="calling.nonesuch").warnings == ()
