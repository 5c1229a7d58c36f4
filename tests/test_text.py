"""The text helpers every view shares (relay_cli.views.text): what a payload value looks like on screen."""

from __future__ import annotations

from typing import Any

import pytest

from relay_cli.views.text import (
    Style,
    call_sgr,
    escape,
    excerpt,
    get,
    join,
    numbers,
    obj,
    present,
    route,
    s,
    short,
    value_text,
    with_reason,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("answered", "answered"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (12, "12"),
        (2**70, str(2**70)),
        (0.93, "0.93"),
        ({"nested": [1, "two"]}, '{"nested":[1,"two"]}'),
        ([1, None], "[1,null]"),
        ("bell\x07", "bell\\x07"),
    ],
)
def test_s_shows_strings_as_they_are_and_nested_values_as_compact_json(value: Any, shown: str) -> None:
    assert s(value) == shown


def test_s_escapes_control_characters_inside_nested_values() -> None:
    assert s({"a": "\u202eevil"}) == '{"a":"\\u202eevil"}'


def test_value_text_writes_null_where_s_writes_nothing() -> None:
    assert value_text(None) == "null" and s(None) == ""
    assert value_text("x\x1b[2J") == "x\\x1b[2J"


def test_short_keeps_eight_characters_escaped_of_any_id() -> None:
    assert short("3f2a9c1b-7d4e") == "3f2a9c1b"
    assert short("\x1b[31mred") == "\\x1b[31m"
    assert short(12345678901) == "12345678"
    assert short(None) == ""


def test_join_leaves_out_empty_parts() -> None:
    assert join("fax", "", "send", "", "2 pages") == "fax send 2 pages"
    assert join("", "") == ""


def test_obj_and_get_tolerate_anything_where_an_object_was_expected() -> None:
    assert obj({"record": "flat"}, "record") == {}
    assert obj({"record": {"url": "u"}}, "record") == {"url": "u"}
    assert get({"detect": {"params": {"event": "HUMAN"}}}, "detect", "params", "event") == "HUMAN"
    assert get({"detect": ["not", "an", "object"]}, "detect", "params", "event") is None


def test_present_counts_zero_and_false_but_not_null_or_empty() -> None:
    assert [present(v) for v in (0, False, "x", None, "")] == [True, True, True, False, False]


def test_excerpt_quotes_and_cuts_long_text() -> None:
    assert excerpt("hi") == '"hi"'
    assert excerpt("x" * 41) == '"' + "x" * 40 + '…"'
    assert excerpt("") == "" and excerpt(None) == ""


def device(**params: Any) -> dict[str, Any]:
    return {"type": "sip", "params": params}


def test_numbers_fall_back_to_sip_from_and_to_when_the_phone_numbers_are_empty() -> None:
    assert numbers(device(from_number="", **{"from": "sip:alice@x"}, to="sip:bob@y")) == "sip:alice@x → sip:bob@y"
    assert numbers(device(from_number=None, **{"from": "sip:a@x"})) == "sip:a@x → ?"
    assert numbers(device(from_number="+1555", to_number="+1666", to="sip:ignored")) == "+1555 → +1666"


def test_numbers_are_empty_for_a_device_that_names_neither_end() -> None:
    assert numbers(device()) == "" and numbers({"params": "x"}) == "" and numbers(None) == ""


def test_route_marks_a_missing_end_and_escapes_both() -> None:
    assert route("+1555", None) == "+1555 → ?"
    assert route("\x1b[2J", 7) == "\\x1b[2J → 7"


@pytest.mark.parametrize(
    ("state", "reason", "shown"),
    [
        ("ended", "hangup", "ended (hangup)"),
        ("answered", None, "answered"),
        ("answered", "", "answered"),
        ("", "busy", "(busy)"),
        ("failed", {"code": 486}, 'failed ({"code":486})'),
    ],
)
def test_with_reason_puts_the_reason_in_parentheses(state: Any, reason: Any, shown: str) -> None:
    assert with_reason(state, reason) == shown


def test_escape_leaves_printable_text_alone() -> None:
    text = "café → ☎ 電話"
    assert escape(text) is text


def test_style_codes_are_empty_without_colour_and_a_call_keeps_its_colour() -> None:
    assert Style(False).code("1;31") == "" and Style(True).code("1;31") == "\x1b[1;31m"
    assert call_sgr("3f2a9c1b") == call_sgr("3f2a9c1b")
