"""Pretty output on a terminal: lines fitted to its width, invisible characters escaped, failures
highlighted, passed calls marked; the JSON formats kept valid and safe there; caches bounded in bytes.

Unit tests call the printers directly; the ``on_terminal`` ones run ``relay`` with stdout on a real
pseudo-terminal of a known width.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import select
import struct
import subprocess
import sys
import termios
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import real_payloads, relay_env
from typer.testing import CliRunner

from relay_cli.cli import app
from relay_cli.emulator.flows import DemoTraffic
from relay_cli.views.phrases import EVENT_TYPES, describer
from relay_cli.views.printers import Format, Printer, Style, cells, escape, fit, headline, make_printer, terminal_json

SGR = re.compile(r"\x1b\[[0-9;]*m")
START = 1_764_201_234.0


def demo(n: int, seed: int = 8) -> list[dict[str, Any]]:
    return list(itertools.islice(DemoTraffic(seed=seed, start=START), n))


def pretty(**options: Any) -> Printer:
    color = options.pop("color", False)
    printer = make_printer(Format.pretty, Style(color), options.pop("verbose", False), **options)
    assert printer is not None
    return printer


def show(printer: Printer, payload: dict[str, Any]) -> str:
    return printer(payload, orjson.dumps(payload), None).decode()


def event(event_type: str, **params: Any) -> dict[str, Any]:
    return {"event_type": event_type, "timestamp": START, "params": {"call_id": "c0ffee00-1111", **params}}


def on_terminal(*args: str, columns: int = 80) -> tuple[int, str, str]:
    """Run ``relay`` with stdout on a pseudo-terminal ``columns`` wide: exit code, stdout, stderr."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=relay_env(TERM="xterm-256color"),
    )
    os.close(slave)
    out = bytearray()
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    return proc.wait(60), bytes(out).replace(b"\r\n", b"\n").decode(), stderr


# -- fitting a line ------------------------------------------------------------------------------------

MESSAGE = '+17397516659 → +13348778929 received "Can you call me back when you get a chance?"'


def test_fit_leaves_text_that_fits_as_it_is() -> None:
    assert fit(MESSAGE, cells(MESSAGE)) == MESSAGE
    assert fit("", 0) == ""


@pytest.mark.parametrize("room", range(0, len(MESSAGE)))
def test_fit_cuts_between_words_so_a_number_is_whole_or_absent(room: int) -> None:
    fitted = fit(MESSAGE, room)
    assert cells(fitted) <= room
    if room:
        assert fitted.endswith("…")
        kept = fitted[:-1]
        assert MESSAGE.startswith(kept) and (kept == "" or kept.endswith(" "))
    for number in re.findall(r"\+\d+", fitted):
        assert number in ("+17397516659", "+13348778929")


def test_fit_counts_wide_characters_as_two_cells() -> None:
    text = "body 你好世界 こんにちは 12345"
    assert cells(text) == 5 + 9 + 11 + 5
    assert fit(text, 15) == "body 你好世界 …"
    assert fit(text, cells(text)) == text
    assert cells("e\u0301") == 1


def test_fit_cuts_inside_a_long_url_but_never_inside_a_long_number() -> None:
    assert fit("record finished 12s https://example.com/recordings/abc/file.mp3", 40) == (
        "record finished 12s https://example.com…"
    )
    assert fit("inbound call +" + "1" * 40 + " on office", 30) == "inbound call …"


def test_piped_pretty_lines_are_not_cut() -> None:
    payload = event("messaging.state", message_id="m1", from_number="+1555", to_number="+1666", body="x" * 300)
    assert show(pretty(), payload) == show(pretty(width=None), payload)
    assert len(show(pretty(), payload)) > 80


def test_demo_lines_fit_80_columns_without_cutting_the_fixed_cells_or_a_number() -> None:
    wide, narrow = pretty(color=True), pretty(color=True, width=80)
    too_long = 0
    for payload in demo(3000):
        full = SGR.sub("", show(wide, payload)).rstrip("\n")
        line = SGR.sub("", show(narrow, payload)).rstrip("\n")
        too_long += cells(full) > 80
        assert cells(line) <= 80, line
        if line == full:
            continue
        assert line.endswith("…") and full.startswith(line[:-1]), (line, full)
        assert line[:47] == full[:47]  # clock, type and call id are never cut
        at = len(line) - 1
        cut_word = full[full.rfind(" ", 0, at) + 1 :].split(" ")[0]
        assert line[:-1].endswith(" ") or (len(cut_word) > 20 and not re.fullmatch(r"\+?\d+", cut_word))
    assert too_long > 300  # the demo does have long lines


def test_a_terminal_narrower_than_the_fixed_cells_drops_the_headline_only() -> None:
    line = show(pretty(width=30), event("calling.call.state", call_state="answered"))
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} calling\.call\.state {7}c0ffee00 \n", line)


def test_verbose_fields_fit_the_width_too() -> None:
    payload = event("calling.call.state", call_state="ringing", device={"type": "phone", "params": {"x": "y" * 200}})
    lines = show(pretty(verbose=True, width=60), payload).splitlines()
    assert len(lines) > 2 and all(cells(line) <= 60 for line in lines)
    assert any(line.startswith("    device {") and line.endswith("…") for line in lines)


def test_an_unknown_long_event_type_is_cut_to_its_column_on_a_terminal_only() -> None:
    long_type = "vendor.extension." + "x" * 40
    payload = {"event_type": long_type, "timestamp": START, "params": {}}
    assert "vendor.extension.xxxxxx… " in show(pretty(width=100), payload)
    assert long_type in show(pretty(), payload)


def test_authorization_state_fits_the_type_column() -> None:
    auth = show(pretty(), {"event_type": "signalwire.authorization.state", "timestamp": START, "params": {}})
    state = show(pretty(), event("calling.call.state", call_state="answered"))
    assert auth.index("session authorization updated") == state.index("answered")
    assert "signalwire.auth.state" in auth


def test_relay_replay_on_a_terminal_fits_its_width_and_piped_output_does_not(tmp_path: Path) -> None:
    log = tmp_path / "demo.jsonl"
    log.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in demo(400)))
    code, out, err = on_terminal("replay", str(log), "--color", "always", columns=72)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 400 and "\x1b[" in out
    assert max(cells(SGR.sub("", line)) for line in lines) == 72
    piped = subprocess.run(
        [sys.executable, "-m", "relay_cli", "replay", str(log), "-o", "pretty"],
        capture_output=True,
        text=True,
        env=relay_env(),
        check=True,
    ).stdout.splitlines()
    assert max(len(line) for line in piped) > 72
    assert [SGR.sub("", line)[:46] for line in lines] == [line[:46] for line in piped]


# -- escaping ------------------------------------------------------------------------------------------


def test_escape_hides_every_control_format_and_separator_character() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            shown = escape(f"a{char}b")
            assert shown.isascii() and shown.isprintable(), hex(code)


@pytest.mark.parametrize(
    "char", ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2028", "\u2029", "\u061c", "\u00ad", "\u2060", "\u2063"]
)
def test_pretty_output_escapes_invisible_characters(char: str) -> None:
    payload = event("messaging.receive", message_id="m1", from_number="+1555", to_number="+1666", body=f"pay{char}pal")
    assert f'"pay\\u{ord(char):04x}pal"' in show(pretty(), payload)


def test_pretty_output_escapes_tag_characters() -> None:
    payload = event("messaging.receive", message_id="m1", from_number="+1555", to_number="+1666", body="hi\U000e0041")
    assert '"hi\\U000e0041"' in show(pretty(), payload)


HOSTILE = "C1\x9b31m bidi\u202egnp.exe isolate\u2067x\u2069 zw\u200b tag\U000e0041 del\x7f plain é→"


@pytest.mark.parametrize("fmt", [Format.json, Format.frame, Format.typed])
def test_json_formats_on_a_terminal_escape_c1_bidi_and_invisible_characters_as_json(fmt: Format) -> None:
    payload = event("messaging.receive", message_id="m1", from_number="+1555", to_number="+1666", body=HOSTILE)
    raw = orjson.dumps(payload)
    piped, tty = make_printer(fmt, Style(False)), make_printer(fmt, Style(False), terminal=True)
    assert piped is not None and tty is not None
    out = tty(payload, raw, 7)
    assert orjson.loads(out) == orjson.loads(piped(payload, raw, 7))
    text = out.decode()
    assert not re.search("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b\U000e0000-\U000e007f]", text)
    assert "\\u009b" in text and "\\u202e" in text and "\\udb40\\udc41" in text and "é→" in text
    assert HOSTILE in piped(payload, raw, 7).decode()  # piped: byte for byte as before


def test_terminal_json_leaves_plain_json_untouched() -> None:
    data = b'{"a":"b\\u0007","c":[1,2]}\n'
    assert terminal_json(data) is data
    assert terminal_json(b'{"a":"\xc2\x85"}') == b'{"a":"\\u0085"}'


def test_relay_replay_json_on_a_terminal_escapes_bidi_overrides(tmp_path: Path) -> None:
    payload = event("messaging.receive", message_id="m1", from_number="+1555", to_number="+1666", body=HOSTILE)
    log = tmp_path / "hostile.jsonl"
    log.write_bytes(orjson.dumps(payload) + b"\n")
    code, out, err = on_terminal("replay", str(log), "-o", "json")
    assert code == 0, err
    assert "\u202e" not in out and "\x9b" not in out and orjson.loads(out)["params"]["body"] == HOSTILE


def test_relay_parse_json_on_a_terminal_escapes_bidi_overrides(tmp_path: Path) -> None:
    payload = event("messaging.receive", message_id="m1", from_number="+1555", to_number="+1666", body=HOSTILE)
    log = tmp_path / "hostile.json"
    log.write_bytes(orjson.dumps(payload))
    code, out, err = on_terminal("parse", str(log), "-o", "json")
    assert code == 0, err
    assert "\u202e" not in out and "\x9b" not in out and orjson.loads(out)["params"]["body"] == HOSTILE


# -- colours -------------------------------------------------------------------------------------------

ALERT = "\x1b[1;31m"
FAILURES = [
    event("calling.call.play", state="error"),
    event("calling.call.state", call_state="ended", end_reason="error"),
    event("calling.call.connect", connect_state="failed"),
    event("calling.call.dial", dial_state="failed", tag="t1"),
    event("calling.call.collect", result={"type": "error"}),
    event("calling.call.record", state="error"),
    event("calling.call.fax", fax={"type": "finished", "params": {"success": False}}),
    event("messaging.state", message_id="m1", message_state="undelivered", reason="Carrier rejected"),
    event("messaging.state", message_id="m1", message_state="failed"),
    event("calling.error", code="500", message="Internal server error"),
]
SUCCESSES = [
    event("calling.call.play", state="finished"),
    event("calling.call.state", call_state="ended", end_reason="hangup"),
    event("calling.call.connect", connect_state="connected"),
    event("calling.call.dial", dial_state="answered", tag="t1"),
    event("messaging.state", message_id="m1", message_state="delivered", body="the play error was fixed"),
    event("calling.call.play", state={"error": True}),
]


@pytest.mark.parametrize("payload", FAILURES, ids=lambda p: p["event_type"])
def test_failures_are_highlighted_when_colour_is_on(payload: dict[str, Any]) -> None:
    line = show(pretty(color=True), payload)
    assert line.endswith("\x1b[0m\n") and ALERT in line.split("c0ffee00" if "call_id" in line else " ", 1)[-1]
    assert show(pretty(), payload) == SGR.sub("", line)


@pytest.mark.parametrize("payload", SUCCESSES, ids=lambda p: p["event_type"])
def test_other_events_are_not_highlighted(payload: dict[str, Any]) -> None:
    assert ALERT not in show(pretty(color=True), payload)


def test_conference_events_use_bright_blue_readable_on_dark_themes() -> None:
    line = show(pretty(color=True), event("calling.conference", name="sales", status="started"))
    assert "\x1b[94mcalling.conference" in line and "\x1b[34m" not in line


# -- passed calls --------------------------------------------------------------------------------------

RECEIVE = event(
    "calling.call.receive",
    context="office",
    device={"type": "phone", "params": {"from_number": "+15550001111", "to_number": "+15550002222"}},
)


def test_an_inbound_call_line_says_it_was_passed_when_passing() -> None:
    assert show(pretty(passing=True), RECEIVE).endswith("inbound call +15550001111 → +15550002222 on office · passed\n")
    assert "passed" not in show(pretty(), RECEIVE)
    assert "passed" not in show(pretty(passing=True), event("calling.call.state", call_state="ringing"))


def test_passed_stays_visible_when_the_line_is_cut() -> None:
    line = show(pretty(passing=True, width=86), RECEIVE)
    assert line.endswith("inbound call +15550001111 → … · passed\n") and cells(line.rstrip("\n")) <= 86


# -- one phrase table --------------------------------------------------------------------------------

WITH_CONTEXT = {
    "calling.call.state",
    "calling.call.receive",
    "calling.call.dial",
    "messaging.state",
    "messaging.receive",
}
"""The types whose headline adds what the timeline puts in its block header: numbers, context, peer, body."""


def corpus() -> list[dict[str, Any]]:
    return demo(3000) + [p for p in real_payloads() if isinstance(p.get("params"), dict)]


def test_a_headline_is_the_events_name_then_the_phrase_the_timeline_shows() -> None:
    seen = set()
    for payload in corpus():
        event_type, params = payload["event_type"], payload["params"]
        phrase = describer(event_type, headline=False)(params)
        line = headline(event_type, params)
        if event_type == "calling.call.receive":
            assert line.startswith("inbound call")
        elif event_type in WITH_CONTEXT:
            assert phrase in line, (line, phrase)
        elif event_type in EVENT_TYPES and event_type != "signalwire.authorization.state":
            assert line == " ".join(filter(None, (event_type.rpartition(".")[2], phrase)))
            seen.add(event_type)
    assert len(seen) >= 15


@pytest.mark.parametrize(
    ("payload", "line"),
    [
        (event("calling.call.play", state={"nested": [1, "two"]}), 'play {"nested":[1,"two"]}'),
        (event("calling.call.connect", connect_state="failed", failed_reason="busy"), "connect failed (busy)"),
        (event("calling.call.connect", connect_state="connected", peer={}), "connect connected"),
        (
            event(
                "calling.call.state", call_state="ringing", device={"params": {"from_number": "", "from": "sip:a@x"}}
            ),
            "ringing sip:a@x → ?",
        ),
        (
            event(
                "calling.call.collect",
                final=False,
                result={"type": "digit", "params": {"digits": "12", "terminator": "#"}},
            ),
            "collect digit 12# (partial)",
        ),
        (event("calling.call.collect", result={"type": "speech", "params": {"confidence": ""}}), "collect speech"),
        (event("calling.call.tap", state="tapping", tap={"params": {"direction": "both"}}), "tap tapping both"),
        (event("calling.conference", name="standup", status="created"), "conference created standup"),
        (
            event("calling.call.transcribe", state="finished", duration=12, url="https://t"),
            "transcribe finished 12s https://t",
        ),
        (event("calling.call.pay", state="finished", **{"for": "payment-completed"}), "pay finished payment-completed"),
        (
            event("calling.call.detect", detect={"type": "machine", "params": {"event": "MACHINE", "beep": True}}),
            "detect machine MACHINE beep",
        ),
        (
            event("calling.call.refer", state="error", sip_refer_to="sip:x@y", sip_refer_response_code="403"),
            "refer error sip:x@y 403",
        ),
        (
            event("calling.call.record", state="finished", record={"url": ""}, url="https://flat"),
            "record finished https://flat",
        ),
        (event("calling.call.queue", status="enqueue", name="q", position=""), "queue enqueue q"),
        (event("calling.call.dial", dial_state="answered", call={"dial_winner": True}), "dial answered"),
        (event("calling.call.state", end_reason="hangup"), "(hangup)"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_the_pretty_line_says_what_the_timeline_says(payload: dict[str, Any], line: str) -> None:
    """The renderings the two views used to disagree on: compact JSON for nested values, the SIP fallback,
    a failed connect with its reason, and each detail only one of them showed."""
    assert show(pretty(), payload).endswith(f" {line}\n")


def test_an_event_type_not_known_shows_its_params_in_a_headline_and_its_state_in_a_phrase() -> None:
    params = {"call_id": "c1", "status": "odd", "token": "secret-value"}
    assert headline("calling.call.new_thing", params) == '"{"call_id":"c1","status":"odd","token":"[redacted]"}"'
    assert describer("calling.call.new_thing", headline=False)(params) == "odd"


# -- memory --------------------------------------------------------------------------------------------


def test_caches_are_bounded_in_bytes_not_entries() -> None:
    printer = pretty(color=True)
    tracemalloc.start()
    try:
        for i in range(3000):
            big = f"{i:08d}" + "x" * 200_000
            show(printer, {"event_type": f"t.{big[:60_000]}", "params": {"call_id": big, "tag": "g" + big}})
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert retained < 40 << 20


def test_tag_only_dial_events_still_find_their_call() -> None:
    printer = pretty()
    show(printer, event("calling.call.state", call_state="created", tag="t-42"))
    line = show(printer, {"event_type": "calling.call.dial", "timestamp": START, "params": {"tag": "t-42"}})
    assert "c0ffee00 dial" in line


# -- help ----------------------------------------------------------------------------------------------


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_top_level_help_suggests_the_demo_first() -> None:
    text = help_text()
    assert "relay tail --demo" in text
    assert text.index("relay tail --demo") < text.index("Exit codes")


@pytest.mark.parametrize("command", ["tail", "replay", "calls", "parse", "serve"])
def test_every_command_help_has_examples(command: str) -> None:
    text = help_text(command)
    assert "Examples" in text and len(re.findall(rf"^\s+relay {command}\b", text, re.MULTILINE)) >= 1


@pytest.mark.parametrize("command", ["tail", "replay", "parse"])
def test_format_help_shows_its_default(command: str) -> None:
    assert "[default: (pretty on a terminal, json when piped)]" in " ".join(help_text(command).split())
