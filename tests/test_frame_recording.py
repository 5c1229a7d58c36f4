"""Two-way recordings: a frame a line, as it crossed the wire plus ``"_relay"``, read back by every reader."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import relay
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_cli import protocol
from relay_cli.pipeline.reader import MAX_LINE, read_close, read_frame, to_event
from relay_cli.pipeline.recording import FrameRecorder, RecordingError, close_line, frame_line
from relay_cli.protocol import APP_TO_RELAY, MAX_FRAME, RELAY_TO_APP, RecordedClose

SECRET = "PT-the-secret-token-value"
EVENT: dict[str, Any] = {
    "event_type": "calling.call.state",
    "timestamp": 1700000000.25,
    "params": {"call_id": "c-1", "node_id": "n-1", "call_state": "created", "direction": "inbound"},
}


def meta(line: bytes) -> Any:
    return orjson.loads(line)["_relay"]


# -- what a line holds ------------------------------------------------------------------------------------


def test_a_json_object_frame_is_recorded_as_its_bytes_with_the_relay_key_before_its_last_brace() -> None:
    raw = orjson.dumps(protocol.event_frame(EVENT, "e-1"))
    line = frame_line(RELAY_TO_APP, 1700000000.5, 2, raw)
    assert line == raw[:-1] + b',"_relay":{"dir":"relay>app","t":1700000000.5,"conn":2}}\n'


def test_byte_identity_keeps_spacing_and_key_order_and_drops_only_trailing_whitespace() -> None:
    raw = b'{ "id" : "x",  "result":{ } ,"jsonrpc":"2.0" }'
    assert (
        frame_line(APP_TO_RELAY, 1.0, 1, raw + b" \r\n\t")
        == raw[:-1] + b',"_relay":{"dir":"app>relay","t":1.0,"conn":1}}\n'
    )
    assert frame_line(APP_TO_RELAY, 1.0, 1, b"{ }") == b'{ "_relay":{"dir":"app>relay","t":1.0,"conn":1}}\n'


def test_a_connect_frame_is_re_encoded_with_its_secrets_redacted() -> None:
    params = protocol.connect_params(project="p-1", token=SECRET, contexts=["office"])
    raw = orjson.dumps(protocol.request("signalwire.connect", params, "c-1"))
    line = frame_line(APP_TO_RELAY, 5.0, 1, raw)
    assert SECRET.encode() not in line
    recorded = orjson.loads(line)
    assert recorded["params"]["authentication"] == protocol.REDACTED
    assert recorded["params"]["contexts"] == ["office"]
    assert recorded["_relay"] == {"dir": "app>relay", "t": 5.0, "conn": 1}


def test_a_frame_that_only_mentions_auth_is_re_encoded_with_nothing_redacted() -> None:
    value = protocol.event_frame({**EVENT, "params": {"call_id": "c", "note": "authorized token-less"}})
    line = frame_line(RELAY_TO_APP, 1.0, 1, orjson.dumps(value, option=orjson.OPT_INDENT_2).replace(b"\n", b" "))
    assert line.startswith(orjson.dumps(value)[:-1] + b',"_relay":')


@pytest.mark.parametrize(
    ("raw", "text", "shown"),
    [
        (b"not json at all", True, "not json at all"),
        (b"[1, 2]", True, "[1, 2]"),
        (b'"a string"', True, '"a string"'),
        (b"\x00\xff\xfe binary", False, "\x00\ufffd\ufffd binary"),
        (b'{"_relay": 1, "id": "x", "result": {}}', True, '{"_relay": 1, "id": "x", "result": {}}'),
        (b'{"token": "' + SECRET.encode() + b'", "cut', True, '{"token": "[redacted]", "cut'),
        (b'[{"jwt_token": {"deep": "' + SECRET.encode() + b'"}}]', True, '[{"jwt_token":"[redacted]"}]'),
    ],
)
def test_a_frame_that_is_not_a_json_object_is_kept_as_redacted_text(raw: bytes, text: bool, shown: str) -> None:
    line = frame_line(APP_TO_RELAY, 2.0, 3, raw, text)
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    record = orjson.loads(line)
    expected = {"dir": "app>relay", "t": 2.0, "conn": 3, "raw": shown} | ({} if text else {"binary": True})
    assert record == {"_relay": expected}
    assert SECRET.encode() not in line


def test_a_frame_with_a_newline_or_bad_bytes_is_decoded_and_re_encoded_on_one_line() -> None:
    assert frame_line(APP_TO_RELAY, 1.0, 1, b'{"a": 1,\n "b": [2]}') == (
        b'{"a":1,"b":[2],"_relay":{"dir":"app>relay","t":1.0,"conn":1}}\n'
    )
    line = frame_line(APP_TO_RELAY, 1.0, 1, b'{"text": "caf\xe9"}')
    assert orjson.loads(line) == {"text": "caf\ufffd", "_relay": {"dir": "app>relay", "t": 1.0, "conn": 1}}


def test_frames_nested_deeper_than_the_encoder_goes_are_kept_as_text_and_read_back() -> None:
    for depth in (254, 255, 1024, 1025, 5000):
        raw = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        line = frame_line(APP_TO_RELAY, 1.0, 1, raw)
        back = read_frame(orjson.loads(line))
        assert back is not None and back[3] == raw, depth


def test_a_frame_over_the_frame_limit_is_recorded_as_its_redacted_first_64_kib_and_reads_back() -> None:
    head = b'{"token":"' + SECRET.encode() + b'","body":"'
    raw = head + b"x" * (11 * 2**20) + b'"}'
    line = frame_line(RELAY_TO_APP, 1.0, 1, raw)
    assert SECRET.encode() not in line and line.count(b"\n") == 1
    assert len(line) < MAX_LINE
    record = orjson.loads(line)
    assert record["_relay"]["size"] == len(raw) and record["_relay"]["truncated"] is True
    back = read_frame(record)
    assert back is not None and back[:3] == (RELAY_TO_APP, 1.0, 1) and back[4] is True
    excerpt = back[3]
    assert isinstance(excerpt, protocol.FrameExcerpt) and excerpt.size == len(raw)
    assert excerpt.startswith(b'{"token":"[redacted]","body":"xxx')
    assert len(excerpt) == protocol.FRAME_EXCERPT - len(head) + len(b'{"token":"[redacted]","body":"')


def test_a_binary_frame_over_the_frame_limit_is_cut_too() -> None:
    line = frame_line(APP_TO_RELAY, 1.0, 1, b"\xff" * (MAX_FRAME + 1), text=False)
    assert len(line) < MAX_LINE
    back = read_frame(orjson.loads(line))
    assert back is not None and back[4] is False
    assert isinstance(back[3], protocol.FrameExcerpt) and back[3].size == MAX_FRAME + 1


def test_a_frame_under_the_limit_reads_back_as_plain_bytes() -> None:
    back = read_frame(orjson.loads(frame_line(APP_TO_RELAY, 1.0, 1, b"not json")))
    assert back is not None and back[3].__class__ is bytes


def test_a_secret_key_spelled_with_an_escape_is_redacted() -> None:
    raw = b'{"jsonrpc":"2.0","id":"c","method":"signalwire.connect","params":{"\\u0074oken":"SECRETB"}}'
    line = frame_line(APP_TO_RELAY, 1.0, 1, raw)
    assert b"SECRETB" not in line
    assert orjson.loads(line)["params"] == {"token": protocol.REDACTED}
    assert b"SECRETB" not in frame_line(APP_TO_RELAY, 1.0, 1, b'[{"\\u0074oken":"SECRETB"}]')
    assert b"SECRETB" not in frame_line(APP_TO_RELAY, 1.0, 1, b'{"_relay":1,"\\u0074oken":"SECRETB"}')


def test_a_secret_under_a_key_given_twice_is_never_recorded() -> None:
    raw = b'{"method":"signalwire.connect","params":{"authentication":{"token":"SECRET3"}},"params":{}}'
    line = frame_line(APP_TO_RELAY, 1.0, 1, raw)
    assert b"SECRET3" not in line
    assert orjson.loads(line) == {"method": "signalwire.connect", "params": {}, "_relay": meta(line)}


def test_a_connections_end_is_a_line_of_its_own_that_reads_back_and_is_no_frame() -> None:
    close = RecordedClose(1700000001.5, 3, 1001, "going away", "by RELAY")
    line = close_line(close)
    assert line == (b'{"_relay":{"t":1700000001.5,"conn":3,"closed":1001,"reason":"going away","detail":"by RELAY"}}\n')
    value = orjson.loads(line)
    assert read_close(value) == close and read_frame(value) is None
    dropped = RecordedClose(2.0, 1, None, "", "dropped by the app")
    assert read_close(orjson.loads(close_line(dropped))) == dropped
    assert read_close(orjson.loads(frame_line(APP_TO_RELAY, 1.0, 1, orjson.dumps(protocol.ack("e-1"))))) is None


def test_a_close_reason_is_redacted_as_any_frame_text_is() -> None:
    line = close_line(RecordedClose(1.0, 1, 4000, f'bad "token": "{SECRET}"', "by the app"))
    assert SECRET.encode() not in line and b"[redacted]" in line


@pytest.mark.parametrize(
    "value",
    [
        {"_relay": {"t": 1.0, "conn": 1}},
        {"_relay": {"t": 1.0, "conn": 1, "closed": "1000"}},
        {"_relay": {"t": 1.0, "conn": "1", "closed": 1000}},
        {"_relay": {"t": None, "conn": 1, "closed": 1000}},
        {"_relay": {"t": 1.0, "conn": 1, "closed": 1000, "reason": 5}},
        {"_relay": {"dir": "app>relay", "t": 1.0, "conn": 1, "closed": 1000}},
        {"_relay": {"t": 1.0, "conn": 1, "closed": 1000}, "jsonrpc": "2.0"},
        {"_relay": {"t": 1.0, "conn": True, "closed": 1000}},
        {"_relay": {"t": 1.0, "conn": 1, "closed": True}},
        [1],
    ],
)
def test_read_close_refuses_what_is_no_connections_end(value: Any) -> None:
    assert read_close(value) is None


def test_read_frame_gives_back_the_frame_and_where_it_crossed() -> None:
    raw = orjson.dumps(protocol.ack("e-1"))
    assert read_frame(orjson.loads(frame_line(APP_TO_RELAY, 7.5, 4, raw))) == ("app>relay", 7.5, 4, raw, True)
    binary = read_frame(orjson.loads(frame_line(RELAY_TO_APP, 8, 1, b"abc", text=False)))
    assert binary == ("relay>app", 8.0, 1, b"abc", False)


@pytest.mark.parametrize(
    "value",
    [
        EVENT,
        [1],
        "text",
        {"_relay": "x"},
        {"_relay": {"dir": "up", "t": 1.0, "conn": 1}},
        {"_relay": {"dir": "app>relay", "t": True, "conn": 1}},
        {"_relay": {"dir": "app>relay", "t": 1.0, "conn": "1"}},
        {"_relay": {"dir": "app>relay", "t": None, "conn": 1}},
        {"_relay": {"dir": "app>relay", "t": 1.0, "conn": 1, "raw": 5}},
    ],
)
def test_read_frame_refuses_what_is_no_frame_record(value: Any) -> None:
    assert read_frame(value) is None


# -- hostile frames, at random ------------------------------------------------------------------------------

KEYS = st.sampled_from(["token", "jwt_token", "authorization_state", "authentication", "_relay", "id", "params"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=4)
)


def _plant(value: Any) -> Any:
    """``value`` with SECRET under each secret key, so the line must not hold it."""
    if isinstance(value, dict):
        return {k: SECRET if k in protocol.SECRET_KEYS else _plant(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plant(v) for v in value]
    return value


def _encoded(value: Any, style: int) -> bytes:
    if style == 0:
        return orjson.dumps(value)
    if style == 1:
        return json.dumps(value, indent=1).encode()  # newlines between tokens
    if style == 3:
        return orjson.dumps(value).replace(b'"token"', b'"\\u0074oken"')  # a secret key spelled with an escape
    return b"  " + json.dumps(value, separators=(" , ", " : ")).encode() + b" \n"


@settings(max_examples=400, deadline=None, derandomize=True)  # the same examples every run
@given(
    value=JSON,
    style=st.integers(0, 3),
    direction=st.sampled_from([APP_TO_RELAY, RELAY_TO_APP]),
    at=st.floats(min_value=0, max_value=4e9),
    connection=st.integers(1, 10_000),
)
def test_any_json_frame_round_trips_and_never_keeps_a_secret(
    value: Any, style: int, direction: str, at: float, connection: int
) -> None:
    value = _plant(value)
    raw = _encoded(value, style)
    line = frame_line(direction, at, connection, raw)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert SECRET.encode() not in line
    assert frame_line(direction, at, connection, raw, decoded=orjson.loads(raw)) == line  # decoded by the caller
    back = read_frame(orjson.loads(line))
    assert back is not None
    assert back[:3] == (direction, at, connection) and back[4] is True
    assert orjson.loads(back[3]) == orjson.loads(orjson.dumps(protocol.redact(orjson.loads(raw))))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    raw=st.binary(max_size=64)
    | st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.builds(lambda s: b'{"a":"' + s.encode("utf-8", "surrogatepass") + b'"}', st.text(max_size=8))
    | st.sampled_from([b'{"a":"\\ud800"}', b'{"a":"\\udc00x"}', b'"\\ud83d"', b"{", b"}", b"{}}", b"{\x00}"]),
    text=st.booleans(),
)
def test_any_bytes_give_one_valid_json_line_that_reads_back(raw: bytes, text: bool) -> None:
    line = frame_line(RELAY_TO_APP, 3.5, 2, raw, text)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = read_frame(orjson.loads(line))
    assert back is not None
    assert back[:3] == (RELAY_TO_APP, 3.5, 2) and back[4] is text
    try:
        original = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    assert orjson.loads(back[3]) == original


# -- the file ------------------------------------------------------------------------------------------------


def test_a_frame_recording_is_private_and_ends_a_partial_last_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "frames.jsonl"
    path.write_bytes(b'{"jsonrpc":"2.0","id":"x","res')
    path.chmod(0o644)
    recorder = FrameRecorder(str(path))
    recorder.write(APP_TO_RELAY, 1.0, 1, orjson.dumps(protocol.ack("x")))
    recorder.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().split(b"\n")[1:] == [
        b'{"jsonrpc":"2.0","id":"x","result":{},"_relay":{"dir":"app>relay","t":1.0,"conn":1}}',
        b"",
    ]
    assert recorder.lines == 1


def test_a_burst_of_frames_is_one_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "frames.jsonl"
    recorder = FrameRecorder(str(path))
    writes: list[bytes] = []
    real_write = os.write

    def counted(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counted)
    raws = [orjson.dumps(protocol.event_frame(EVENT, f"e-{i}")) for i in range(50)]
    recorder.write_many(RELAY_TO_APP, 9.0, 3, raws)
    recorder.write_many(RELAY_TO_APP, 9.0, 3, [])
    recorder.close()
    assert len(writes) == 1 and recorder.lines == 50
    assert writes[0] == b"".join(frame_line(RELAY_TO_APP, 9.0, 3, raw) for raw in raws)


def test_a_frame_recording_refuses_a_symbolic_link_and_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with pytest.raises(RecordingError) as caught:
        FrameRecorder(str(link))
    assert str(caught.value) == f"cannot record to {link}: it is a symbolic link; give the file itself"
    assert target.read_text() == "precious\n"
    with pytest.raises(RecordingError) as caught:
        FrameRecorder(str(tmp_path))
    assert str(caught.value) == f"cannot record to {tmp_path}: Is a directory"


def test_a_failed_write_names_the_file(tmp_path: Path) -> None:
    recorder = FrameRecorder("/dev/full")
    with pytest.raises(RecordingError) as caught:
        recorder.write(APP_TO_RELAY, 1.0, 1, b"{}")
    recorder.close()
    assert str(caught.value) == "cannot write to /dev/full: No space left on device"


# -- the readers of event recordings read it -----------------------------------------------------------------


def _two_way(path: Path) -> list[dict[str, Any]]:
    """A session both ways, as relay serve or relay proxy record it: connect, two events and their ACKs, a verb and
    its result, and a frame that is not JSON; the events are returned."""
    ended = {**EVENT, "timestamp": EVENT["timestamp"] + 2, "params": {**EVENT["params"], "call_state": "ended"}}
    params = protocol.connect_params(project="p-1", token=SECRET, contexts=["office"])
    frames: list[tuple[str, bytes, bool]] = [
        (APP_TO_RELAY, orjson.dumps(protocol.request("signalwire.connect", params, "c-1")), True),
        (RELAY_TO_APP, orjson.dumps(protocol.result("c-1", {"protocol": "signalwire_x", "sessionid": "s"})), True),
        (RELAY_TO_APP, orjson.dumps(protocol.event_frame(EVENT, "e-1")), True),
        (APP_TO_RELAY, orjson.dumps(protocol.ack("e-1")), True),
        (APP_TO_RELAY, orjson.dumps(protocol.request("calling.answer", {"call_id": "c-1"}, "r-1")), True),
        (RELAY_TO_APP, orjson.dumps(protocol.result("r-1", {"code": "200", "message": "Answered"})), True),
        (RELAY_TO_APP, orjson.dumps(protocol.event_frame(ended, "e-2")), True),
        (APP_TO_RELAY, orjson.dumps(protocol.ack("e-2")), True),
        (APP_TO_RELAY, b"hello?", True),
        (APP_TO_RELAY, b"\x00\x01", False),
        (APP_TO_RELAY, b'{"hello": "world"}', True),
    ]
    path.write_bytes(b"".join(frame_line(d, 10.0 + i, 1, raw, text) for i, (d, raw, text) in enumerate(frames)))
    return [EVENT, ended]


def test_replay_frames_counts_the_lines_a_connections_end_lets_go(tmp_path: Path) -> None:
    """An event held for its ACK goes out when its connection ends: ``-n`` counts it there, and stops."""
    path = tmp_path / "closed.jsonl"
    event = orjson.dumps(protocol.event_frame(EVENT, "e-1"))
    later = orjson.dumps(protocol.request("signalwire.ping", {}, "p-1"))
    path.write_bytes(
        frame_line(RELAY_TO_APP, 10.0, 1, event)
        + close_line(RecordedClose(10.5, 1, 1000, "", "by the app"))
        + frame_line(APP_TO_RELAY, 11.0, 2, later)
    )
    result = relay("replay", str(path), "--frames", "-n", "1", "--color", "never", "-o", "pretty")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert "calling.call.state" in line and line.endswith(" · no ACK, closed")


def test_replay_shows_exactly_the_events_of_a_two_way_recording(tmp_path: Path) -> None:
    path = tmp_path / "two-way.jsonl"
    events = _two_way(path)
    result = relay("replay", str(path), "-o", "json")
    assert (result.returncode, result.stderr) == (0, "")
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == events


def test_calls_builds_the_timeline_of_a_two_way_recording(tmp_path: Path) -> None:
    path = tmp_path / "two-way.jsonl"
    _two_way(path)
    result = relay("calls", str(path), "--color", "never")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("call c-1")
    assert "+0.000s  state       created" in result.stdout and "+2.000s  state       ended" in result.stdout


def test_parse_types_the_events_and_names_every_other_frame(tmp_path: Path) -> None:
    path = tmp_path / "two-way.jsonl"
    _two_way(path)
    result = relay("parse", str(path), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["call_state"] for line in result.stdout.splitlines()] == ["created", "ended"]
    assert result.stderr.splitlines() == [
        f"{path}:1: not an event: signalwire.connect request",
        f"{path}:2: not an event: signalwire.connect result",
        f"{path}:4: not an event: empty result (an ACK or a reply to a ping or disconnect)",
        f"{path}:5: not an event: calling.answer request",
        f"{path}:6: not an event: call-control result 200 (success): Answered",
        f"{path}:8: not an event: empty result (an ACK or a reply to a ping or disconnect)",
        f"{path}:9: not an event: a frame that is not JSON-RPC (app>relay, connection 1)",
        f"{path}:10: not an event: a binary frame, not JSON-RPC (app>relay, connection 1)",
        f"{path}:11: not an event: a frame that is not JSON-RPC (app>relay, connection 1)",
    ]
    assert SECRET not in result.stdout + result.stderr + path.read_text()


def test_to_event_names_a_recorded_frame_that_is_not_json_rpc() -> None:
    for raw in (b"garbage", b"{}", b'{"jsonrpc":"2.0"}'):
        payload, note = to_event(orjson.loads(frame_line(RELAY_TO_APP, 1.0, 2, raw)))
        assert payload is None and note is not None and note.endswith("(relay>app, connection 2)"), raw
    assert to_event({"_relay": "not a record", "event_type": "x"}) == (
        {"_relay": "not a record", "event_type": "x"},
        None,
    )
