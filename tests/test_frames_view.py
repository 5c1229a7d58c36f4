"""The frame view of ``relay serve``: a line per frame both ways, results paired with their requests, JSON records."""

from __future__ import annotations

from typing import Any

import orjson

from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP, FrameRecord, Kind, classify
from relay_cli.views.frames import FrameView
from relay_cli.views.printers import Format, make_printer
from relay_cli.views.text import Style

T0 = 1_700_000_000.0
CALL = "8d19821f-0000-4000-8000-000000000001"
RECEIVE = {
    "event_type": "calling.call.receive",
    "timestamp": T0,
    "params": {
        "call_id": CALL,
        "call_state": "created",
        "context": "default",
        "device": {"type": "phone", "params": {"from_number": "+15550001111", "to_number": "+15550002222"}},
    },
}


def feed(view: FrameView, *frames: tuple[str, Any], conn: str = "c-a", step: float = 0.02) -> list[str]:
    lines = []
    for i, (direction, frame) in enumerate(frames):
        raw = frame if isinstance(frame, bytes) else orjson.dumps(frame)
        try:
            kind: Kind | None = classify(orjson.loads(raw))
        except (ValueError, orjson.JSONDecodeError):
            kind = None
        out = view(direction, T0 + i * step, conn, kind, raw)
        lines += out.decode().splitlines()
    return lines


def plain(**options: Any) -> FrameView:
    return FrameView(Style(False), **options)


def test_a_result_names_its_request_and_the_milliseconds_since() -> None:
    lines = feed(
        plain(),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "r1", "method": "calling.answer", "params": {"call_id": CALL}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "r1", "result": {"code": "200", "message": "Answered"}}),
    )
    assert len(lines) == 2
    request, result = lines
    assert " #1  → calling.answer " in request and request.endswith(" 8d19821f")
    assert " #1  ← calling.answer " in result and "8d19821f 200 Answered · 20 ms" in result


def test_requests_show_the_params_that_matter() -> None:
    play = {
        "call_id": CALL,
        "control_id": "c0ffee00-1",
        "play": [{"type": "tts", "params": {"text": "Welcome"}}, {"type": "silence", "params": {"duration": 2}}],
    }
    send = {"context": "office", "from_number": "+15551112222", "to_number": "+15553334444", "body": "hi"}
    dial = {"tag": "7a9b0c1d-x", "devices": [[{"type": "phone", "params": {"to_number": "+15559990000"}}]]}
    lines = feed(
        plain(),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": 1, "method": "calling.play", "params": play}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": 2, "method": "calling.send_digits", "params": {"digits": "12#"}}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": 3, "method": "messaging.send", "params": send}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": 4, "method": "calling.dial", "params": dial}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": 5, "method": "calling.end", "params": {"reason": "busy"}}),
    )
    assert lines[0].endswith('8d19821f control c0ffee00 tts "Welcome", silence 2s')
    assert lines[1].endswith("digits 12#")
    assert lines[2].endswith('+15551112222 → +15553334444 "hi" on office')
    assert lines[3].endswith("tag 7a9b0c1d to +15559990000")
    assert lines[4].endswith("reason busy")


def test_events_read_as_relay_tail_prints_them_with_the_frame_clock() -> None:
    tail = make_printer(Format.pretty, Style(False))
    assert tail is not None
    (line,) = feed(
        plain(), (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event", "params": RECEIVE})
    )
    _, _, tail_rest = tail(RECEIVE, None, None).decode().rstrip("\n").partition(" ")
    assert line.endswith(" #1  ← " + tail_rest)
    assert "inbound call +15550001111 → +15550002222 on default" in line


def test_acks_pings_and_pongs_are_shown_only_when_verbose() -> None:
    frames = (
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event", "params": RECEIVE}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "e1", "result": {}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "p1", "method": "signalwire.ping", "params": {}}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "p1", "result": {}}),
    )
    assert len(feed(plain(), *frames)) == 1
    verbose = feed(plain(verbose=True), *frames)
    assert len(verbose) == 4
    assert "→ calling.call.receive     8d19821f ack · 20 ms" in verbose[1]
    assert "← signalwire.ping" in verbose[2] and "→ signalwire.ping" in verbose[3] and "pong" in verbose[3]


def test_a_pong_carrying_a_timestamp_is_still_a_pong() -> None:
    """RELAY answers an app's ping with its clock: ``{"timestamp": ...}``, no more news than an empty pong."""
    frames = (
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "p2", "method": "signalwire.ping", "params": {}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "p2", "result": {"timestamp": 1796173055.6}}),
    )
    assert feed(plain(), *frames) == []
    verbose = feed(plain(verbose=True), *frames)
    assert "← signalwire.ping" in verbose[1] and verbose[1].endswith("pong · 20 ms")


def test_errors_and_failed_codes_are_highlighted() -> None:
    view = FrameView(Style(True))
    lines = feed(
        view,
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "a", "method": "calling.play", "params": {"call_id": CALL}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "a", "error": {"code": -32602, "message": "missing play"}}),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "b", "method": "calling.answer", "params": {"call_id": "gone"}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "b", "result": {"code": "404", "message": "call not found"}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "c", "result": {"code": "200", "message": "ok"}}),
    )
    assert "\x1b[1;31merror -32602 missing play · 20 ms\x1b[0m" in lines[1]
    assert "\x1b[1;31m404 call not found · 20 ms\x1b[0m" in lines[3]
    assert "\x1b[1;31m" not in lines[4]


def test_a_frame_that_is_not_json_rpc_is_shown_escaped() -> None:
    (line,) = feed(plain(), (APP_TO_RELAY, b"hello \x1b[2J"))
    assert "→ (not JSON-RPC)" in line and "hello \\x1b[2J" in line and "\x1b" not in line


def test_connections_are_numbered_in_order_of_appearance() -> None:
    view = plain()
    ping = {"jsonrpc": "2.0", "id": "x", "method": "calling.answer", "params": {}}
    assert "#1 " in feed(view, (APP_TO_RELAY, ping), conn="zz")[0]
    assert "#2 " in feed(view, (APP_TO_RELAY, ping), conn="aa")[0]
    assert "#1 " in feed(view, (APP_TO_RELAY, ping), conn="zz")[0]


def test_ascii_marks_for_terminals_without_unicode() -> None:
    lines = feed(
        plain(ascii=True),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": "r", "method": "calling.answer", "params": {}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "r", "result": {"code": "200"}}),
    )
    assert " -> calling.answer" in lines[0] and " <- calling.answer" in lines[1]


def test_lines_fit_the_terminal_width() -> None:
    text = "word " * 40
    lines = feed(
        plain(width=80),
        (APP_TO_RELAY, {"jsonrpc": "2.0", "id": 1, "method": "messaging.send", "params": {"body": text}}),
        (RELAY_TO_APP, {"jsonrpc": "2.0", "id": "e", "method": "signalwire.event", "params": RECEIVE}),
    )
    assert all(len(line) <= 80 for line in lines), lines


def test_json_records_and_lines_never_show_a_secret_key_spelled_with_an_escape() -> None:
    frame = b'{"jsonrpc":"2.0","id":"c","method":"signalwire.connect","params":{"\\u0074oken":"SECRETB"}}'
    records = FrameView(Style(False), json=True)
    record = records(APP_TO_RELAY, T0, "c-a", Kind.CONNECT, frame)
    assert b"SECRETB" not in record and orjson.loads(record)["frame"]["params"] == {"token": "[redacted]"}
    for raw in (b'[{"\\u0074oken":"SECRETB"}]', b'[{"jwt_token":{"deep":"SECRETB"}}]', b'{"\\u0074oken":"SECRETB'):
        record = records(RELAY_TO_APP, T0, "c-a", None, raw)
        assert b"SECRETB" not in record and orjson.loads(record)["frame"] is None, raw
    lines = FrameView(Style(False), verbose=True)
    for raw in (frame, b'[{"\\u0074oken":"SECRETB"}]', b'{"\\u0074oken" : "SECRETB'):
        assert b"SECRETB" not in lines(APP_TO_RELAY, T0, "c-a", None, raw), raw


def test_json_records_carry_direction_time_connection_and_the_frame_redacted() -> None:
    view = FrameView(Style(False), json=True)
    connect = {
        "jsonrpc": "2.0",
        "id": "c",
        "method": "signalwire.connect",
        "params": {"authentication": {"project": "p", "token": "PT-secret-token-value"}},
    }
    ack = {"jsonrpc": "2.0", "id": "e1", "result": {}}
    out = [
        view(APP_TO_RELAY, T0, "c-a", Kind.CONNECT, orjson.dumps(connect)),
        view(APP_TO_RELAY, T0 + 0.5, "c-a", Kind.RESULT, orjson.dumps(ack)),
        view(RELAY_TO_APP, T0 + 1, "c-b", None, b"not json"),
    ]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in out)
    first, second, third = (orjson.loads(line) for line in out)
    assert first["dir"] == "app>relay" and first["t"] == T0 and first["conn"] == 1
    assert first["frame"]["params"]["authentication"] == "[redacted]"
    assert b"PT-secret" not in out[0]
    assert second == {"dir": "app>relay", "t": T0 + 0.5, "conn": 1, "frame": ack}
    assert third == {"dir": "relay>app", "t": T0 + 1, "conn": 2, "frame": None, "raw": "not json"}
    assert list(first) == ["dir", "t", "conn", "frame"]


def test_a_frame_record_is_viewed_like_its_fields() -> None:
    frame = {"jsonrpc": "2.0", "id": "r", "method": "calling.answer", "params": {"call_id": CALL}}
    raw = orjson.dumps(frame)
    rec = FrameRecord(APP_TO_RELAY, T0, "c-a", Kind.REQUEST, frame, raw)
    assert plain().record(rec) == plain()(APP_TO_RELAY, T0, "c-a", Kind.REQUEST, raw)


def test_a_connect_is_shown_without_its_credentials() -> None:
    lines = feed(
        plain(),
        (
            APP_TO_RELAY,
            {
                "jsonrpc": "2.0",
                "id": "c",
                "method": "signalwire.connect",
                "params": {"authentication": {"project": "p", "token": "PT-secret"}, "contexts": ["default", "office"]},
            },
        ),
        (
            RELAY_TO_APP,
            {"jsonrpc": "2.0", "id": "c", "result": {"protocol": "signalwire_x", "sessionid": "5f1e2a3b-9"}},
        ),
    )
    assert lines[0].endswith("→ signalwire.connect                contexts default, office")
    assert "PT-secret" not in "".join(lines)
    assert lines[1].endswith("session 5f1e2a3b · 20 ms")


def test_pending_requests_are_bounded() -> None:
    view = plain()
    for i in range(12_000):
        view(APP_TO_RELAY, T0, "c", Kind.REQUEST, orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "calling.x"}))
    assert len(view.conversation) <= 10_000
