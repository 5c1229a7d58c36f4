"""Option values a user gets wrong, run through the real CLI: each gives one clear stderr line and its exit code.

Filter typos warn (they can be right for an event type added later) and the run goes on; an ambiguous
--call-id, a regex too slow for a stream, flags that cancel each other and missing credentials are usage
errors (exit 2), and a bad value from the environment is named by its variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import CREDS, emulator, relay

from relay_cli.pipeline.filters import REGEX_TEXT_LIMIT

CALL_A = "ab000000-0000-4000-8000-00000000000a"
CALL_B = "ab000000-0000-4000-8000-00000000000b"
CALL_C = "cd000000-0000-4000-8000-00000000000c"
MESSAGE = "0c89f536-aff2-405c-b006-a4b7c463e525"


def state(call_id: str, call_state: str, ts: float) -> dict[str, Any]:
    return {
        "event_type": "calling.call.state",
        "timestamp": ts,
        "params": {"call_id": call_id, "call_state": call_state, "direction": "inbound", "device": {"type": "phone"}},
    }


def call(call_id: str, start: float) -> list[dict[str, Any]]:
    return [state(call_id, s, start + i) for i, s in enumerate(("created", "ringing", "answered", "ending", "ended"))]


MESSAGE_EVENT = {
    "event_type": "messaging.receive",
    "timestamp": 1700000020.0,
    "context": "office",
    "params": {
        "message_id": MESSAGE,
        "context": "office",
        "direction": "inbound",
        "from_number": "+15550001111",
        "to_number": "+15550002222",
        "body": "hello",
        "media": [],
        "segments": 1,
        "message_state": "received",
        "tags": [],
    },
}
# Call A ends before call B starts: an ambiguous prefix shows A's events, then stops at B's first.
EVENTS = [*call(CALL_A, 1700000000.0), *call(CALL_B, 1700000010.0), MESSAGE_EVENT, *call(CALL_C, 1700000030.0)]


@pytest.fixture
def log(tmp_path: Path) -> str:
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    return str(path)


def shown(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --- filter typos --------------------------------------------------------------------------------------


def test_a_misspelt_type_warns_naming_the_nearest_known_type(log: str) -> None:
    result = relay("replay", log, "--type", "calling.call.plya", "-o", "json")
    assert result.returncode == 0
    assert result.stdout == ""
    assert only_line(result.stderr) == (
        "relay: --type 'calling.call.plya' matches no known event type (did you mean 'calling.call.play'?)"
    )


def test_a_bare_action_name_as_type_warns_with_the_full_type(log: str) -> None:
    result = relay("replay", log, "--type", "play", "--exclude", "state", "-o", "json")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "relay: --type 'play' matches no known event type (did you mean 'calling.call.play'?)",
        "relay: --exclude 'state' matches no known event type (did you mean '*.state'?)",
    ]


def test_protocol_and_family_globs_do_not_warn(log: str) -> None:
    result = relay("replay", log, "-t", "signalwire.*", "-t", "messaging.*", "-x", "calling.call.*", "-o", "json")
    assert result.returncode == 0 and result.stderr == ""
    assert [e["event_type"] for e in shown(result.stdout)] == ["messaging.receive"]


def test_double_equals_in_where_is_taken_as_equals(log: str) -> None:
    jq_habit = relay("replay", log, "--where", "params.call_state==ended", "-o", "json")
    assert jq_habit.returncode == 0 and jq_habit.stderr == ""
    ended = shown(jq_habit.stdout)
    assert [e["params"]["call_id"] for e in ended] == [CALL_A, CALL_B, CALL_C]
    assert jq_habit.stdout == relay("replay", log, "--where", "params.call_state=ended", "-o", "json").stdout


def test_a_where_path_outside_the_payload_warns_with_the_params_spelling(log: str) -> None:
    result = relay("replay", log, "--where", "call_state=ended", "-o", "json")
    assert result.returncode == 0 and result.stdout == ""
    assert only_line(result.stderr) == (
        "relay: --where 'call_state=ended': an event has no top-level 'call_state' (it has event_type,"
        " event_channel, timestamp, project_id, space_id, context, params); did you mean 'params.call_state=ended'?"
    )


def test_a_call_id_no_uuid_can_start_with_warns(log: str) -> None:
    result = relay("replay", log, "--call-id", "zzzz", "-o", "json")
    assert result.returncode == 0 and result.stdout == ""
    assert only_line(result.stderr) == (
        "relay: --call-id 'zzzz': RELAY call and message ids are UUIDs (hex digits and dashes), so this can match"
        " only ids of another shape"
    )


def test_filter_warnings_are_printed_by_tail_too() -> None:
    result = relay("tail", "--demo", "--rate", "500", "-n", "1", "-t", "calling.call.plya", "--timeout", "1")
    assert "relay: --type 'calling.call.plya' matches no known event type" in result.stderr
    assert result.returncode == 0


# --- --call-id -----------------------------------------------------------------------------------------

AMBIGUOUS = f"relay: --call-id 'ab' is ambiguous: it matches {CALL_A}, {CALL_B}; give more characters"


def test_an_ambiguous_call_id_stops_replay_at_the_second_call_with_exit_2(log: str) -> None:
    result = relay("replay", log, "--call-id", "ab", "-o", "json")
    assert result.returncode == 2
    assert only_line(result.stderr) == AMBIGUOUS
    assert {e["params"]["call_id"] for e in shown(result.stdout)} == {CALL_A}


def test_an_ambiguous_call_id_stops_calls_with_exit_2(log: str) -> None:
    result = relay("calls", log, "--call-id", "ab", "--color", "never")
    assert result.returncode == 2
    assert only_line(result.stderr) == AMBIGUOUS
    assert "no end state" not in result.stdout


def test_an_ambiguous_call_id_stops_tail_with_exit_2() -> None:
    with emulator(replay=EVENTS, rate=0, ping_interval=0) as server:
        result = relay(
            "tail", "--url", server.url, *CREDS, "-c", "office", "--call-id", "ab", "-o", "json", "--timeout", "20"
        )
    assert result.returncode == 2, result.stderr
    assert AMBIGUOUS in result.stderr.splitlines()
    assert {e["params"]["call_id"] for e in shown(result.stdout)} == {CALL_A}


def test_a_full_call_id_is_never_ambiguous(log: str) -> None:
    result = relay("replay", log, "--call-id", CALL_B, "-o", "json")
    assert result.returncode == 0 and result.stderr == ""
    assert len(shown(result.stdout)) == 5


def test_repeating_call_id_shows_any_of_the_calls(log: str) -> None:
    result = relay("replay", log, "--call-id", "ab000000-0000-4000-8000-00000000000a", "--call-id", "cd", "-o", "json")
    assert result.returncode == 0 and result.stderr == ""
    assert [e["params"]["call_id"] for e in shown(result.stdout)] == [CALL_A] * 5 + [CALL_C] * 5
    blocks = relay("calls", log, "--call-id", CALL_A, "--call-id", "cd", "--color", "never")
    assert blocks.returncode == 0, blocks.stderr
    assert CALL_A[:8] in blocks.stdout and CALL_C[:8] in blocks.stdout and CALL_B not in blocks.stdout


def test_the_message_id_shown_in_the_call_column_selects_the_message(log: str) -> None:
    pretty = relay("replay", log, "-o", "pretty", "--color", "never", "-t", "messaging.*")
    column = pretty.stdout.split()[2]
    assert column == MESSAGE[:8]
    result = relay("replay", log, "--call-id", column, "-o", "json")
    assert result.returncode == 0 and result.stderr == ""
    assert [e["params"].get("message_id") for e in shown(result.stdout)] == [MESSAGE]


def help_text(command: str) -> str:
    """A command's help as one line of words, without the boxes rich draws around options."""
    return " ".join(relay(command, "--help", env={"COLUMNS": "200"}).stdout.replace("│", " ").split())


def test_call_id_help_says_it_is_repeatable() -> None:
    for command in ("tail", "replay", "calls"):
        assert "repeatable, any matches" in help_text(command)


# --- bounded regexes -----------------------------------------------------------------------------------


def test_a_regex_with_nested_repetition_is_refused_before_reading(log: str) -> None:
    result = relay("replay", log, "--where", "params.body~(a+)+$")
    assert result.returncode == 2 and result.stdout == ""
    assert only_line(result.stderr) == (
        "relay: --where 'params.body~(a+)+$': regex refused: it repeats a group that itself repeats or has"
        " alternatives (like (a+)+ or (a|ab)*), which can take minutes on one event; repeat a single character"
        " or class instead"
    )


def test_a_regex_that_backtracks_polynomially_is_refused_by_tail_too() -> None:
    result = relay("tail", "--demo", "--where", "params.body~a.*b.*c")
    assert result.returncode == 2 and result.stdout == ""
    assert only_line(result.stderr).startswith(
        "relay: --where 'params.body~a.*b.*c': regex refused: its open-ended repetitions in a row"
    )


def test_where_help_documents_the_regex_rule() -> None:
    text = help_text("replay")
    assert f"A REGEX sees the first {REGEX_TEXT_LIMIT} characters of the value" in text
    assert "(a+)+" in text and "== works too" in text
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"first {REGEX_TEXT_LIMIT:,} characters" in readme


# --- environment variables and credentials -------------------------------------------------------------


def test_a_bad_space_from_the_environment_names_the_variable() -> None:
    result = relay("tail", *CREDS, env={"SIGNALWIRE_SPACE": "x y"})
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "relay: SIGNALWIRE_SPACE='x y' (from the environment): must be a bare host name such as example.signalwire.com"
    )


def test_a_bad_space_from_the_flag_names_the_flag() -> None:
    result = relay("tail", *CREDS, "--space", "x y", env={"SIGNALWIRE_SPACE": "fine.signalwire.com"})
    assert result.returncode == 2
    assert only_line(result.stderr) == "relay: --space 'x y' must be a bare host name such as example.signalwire.com"


def test_a_missing_ca_file_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.pem")
    result = relay("tail", *CREDS, env={"SIGNALWIRE_RELAY_CA_FILE": missing})
    assert result.returncode == 2
    assert only_line(result.stderr).startswith(
        f"relay: SIGNALWIRE_RELAY_CA_FILE={missing!r} (from the environment): cannot load: "
    )
    flag = relay("tail", *CREDS, "--ca-file", missing)
    assert only_line(flag.stderr).startswith(f"relay: --ca-file {missing}: cannot load: ")


def test_missing_credentials_are_named_at_once() -> None:
    result = relay("tail")
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "relay: missing --project (or SIGNALWIRE_PROJECT_ID) and --token (or SIGNALWIRE_API_TOKEN);"
        " or give --jwt (or SIGNALWIRE_JWT_TOKEN) instead"
    )
    token_only = relay("tail", env={"SIGNALWIRE_API_TOKEN": "PT-from-env"})
    assert token_only.returncode == 2
    assert only_line(token_only.stderr) == (
        "relay: missing --project (or SIGNALWIRE_PROJECT_ID); or give --jwt (or SIGNALWIRE_JWT_TOKEN) instead"
    )


# --- flags that cancel each other ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--url", "ws://127.0.0.1:1"], "--url"),
        (["--project", "p"], "--project"),
        (["--project", "p", "--token", "t"], "--project, --token"),
        (["--jwt", "j"], "--jwt"),
        (["--space", "example.signalwire.com"], "--space"),
    ],
)
def test_demo_with_connection_flags_is_a_usage_error(flags: list[str], named: str) -> None:
    result = relay("tail", "--demo", *flags)
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        f"relay: --demo cannot be used with {named}: --demo runs a built-in emulator, with no account"
    )


def test_demo_ignores_credentials_from_the_environment() -> None:
    env = {"SIGNALWIRE_PROJECT_ID": "p", "SIGNALWIRE_API_TOKEN": "t", "SIGNALWIRE_SPACE": "x.signalwire.com"}
    result = relay("tail", "--demo", "--rate", "500", "-n", "2", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(shown(result.stdout)) == 2


def test_rate_without_demo_is_a_usage_error() -> None:
    result = relay("tail", *CREDS, "--url", "ws://127.0.0.1:1", "--rate", "50")
    assert result.returncode == 2
    assert only_line(result.stderr) == "relay: --rate paces the built-in emulator's traffic: it goes with --demo"


def test_url_and_space_together_is_a_usage_error() -> None:
    result = relay("tail", *CREDS, "--url", "wss://a.example.com", "--space", "b.signalwire.com")
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "relay: --url and --space cannot be used together: --url names the endpoint itself"
    )


@pytest.mark.parametrize("flag", [["-o", "json"], ["-o", "pretty"], ["-v"]])
def test_by_call_with_a_format_or_verbose_is_a_usage_error(log: str, flag: list[str]) -> None:
    result = relay("replay", log, "--by-call", *flag)
    assert result.returncode == 2 and result.stdout == ""
    named = "--verbose" if flag == ["-v"] else f"--format {flag[1]}"
    assert only_line(result.stderr) == (
        f"relay: --by-call and {named} cannot be used together: --by-call prints call blocks"
    )


@pytest.mark.parametrize("fmt", ["json", "frame", "typed", "none"])
def test_verbose_with_a_format_other_than_pretty_is_a_usage_error_in_replay(log: str, fmt: str) -> None:
    result = relay("replay", log, "-v", "-o", fmt)
    assert result.returncode == 2 and result.stdout == ""
    assert only_line(result.stderr) == (
        f"relay: --verbose adds typed fields to pretty output, but --format {fmt}:"
        " add --format pretty, or drop --verbose"
    )


def test_tail_takes_verbose_with_any_format_for_its_calling_pass_outcomes() -> None:
    result = relay("tail", "--demo", "--rate", "500", "-n", "2", "-v", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(shown(result.stdout)) == 2


def test_verbose_when_stdout_is_not_a_terminal_asks_for_pretty(log: str) -> None:
    result = relay("replay", log, "-v")
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "relay: --verbose adds typed fields to pretty output, but the format is json (stdout is not a terminal):"
        " add --format pretty, or drop --verbose"
    )
    pretty = relay("replay", log, "-v", "-o", "pretty", "--color", "never")
    assert pretty.returncode == 0 and pretty.stderr == ""
    assert "call_state" in pretty.stdout
