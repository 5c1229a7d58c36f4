"""ProxyView: the lines of `relay proxy` (latencies, ACKs on event lines, held lines), its records and summary."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from relay_cli.pipeline.filters import FrameFilter
from relay_cli.protocol import APP_TO_RELAY, RELAY_TO_APP
from relay_cli.views.frames import FrameView
from relay_cli.views.latency import ERROR, GAMMA, Histogram
from relay_cli.views.proxy import HELD, LinkInfo, ProxyView
from relay_cli.views.summary import nearest_rank
from relay_cli.views.text import Style

T0 = 1_700_000_000.0
CALL = "8d19821f-0000-4000-8000-000000000001"
RED = "\x1b[1;31m"


def event(fid: str, event_type: str = "calling.call.state", call: str = CALL, **params: Any) -> bytes:
    payload = {
        "event_type": event_type,
        "timestamp": T0,
        "params": {"call_id": call, "call_state": "answered", **params},
    }
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "method": "signalwire.event", "params": payload})


def ack(fid: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "result": {}})


def request(fid: str, method: str = "calling.answer", **params: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "method": method, "params": {"call_id": CALL, **params}})


def result(fid: str, code: str = "200", message: str = "ok") -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": fid, "result": {"code": code, "message": message}})


def lines(out: bytes) -> list[str]:
    return out.decode().splitlines()


def plain(**options: Any) -> ProxyView:
    return ProxyView(Style(False), **options)


def test_a_result_line_carries_its_request_and_latency() -> None:
    view = plain()
    (asked,) = lines(view.frame(APP_TO_RELAY, T0, 1, request("r1")))
    (answered,) = lines(view.frame(RELAY_TO_APP, T0 + 0.0032, 1, result("r1", "200", "Answered")))
    assert " #1  → calling.answer " in asked and asked.endswith(" 8d19821f")
    assert " #1  ← calling.answer " in answered and answered.endswith("8d19821f 200 Answered · 3.2 ms")


def test_error_answers_are_highlighted() -> None:
    view = ProxyView(Style(True))
    view.frame(APP_TO_RELAY, T0, 1, request("a", "calling.play"))
    error = view.frame(RELAY_TO_APP, T0 + 0.02, 1, b'{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"no"}}')
    assert f"{RED}error -32602 no · 20 ms\x1b[0m" in error.decode()
    view.frame(APP_TO_RELAY, T0, 1, request("b"))
    failed = view.frame(RELAY_TO_APP, T0 + 0.02, 1, result("b", "404", "call not found"))
    assert f"{RED}404 call not found · 20 ms\x1b[0m" in failed.decode()
    view.frame(APP_TO_RELAY, T0, 1, request("c"))
    assert RED not in view.frame(RELAY_TO_APP, T0 + 0.02, 1, result("c")).decode()


def test_an_event_line_waits_for_its_ack_and_carries_the_ack_latency() -> None:
    view = plain()
    assert view.frame(RELAY_TO_APP, T0, 1, event("e1")) == b""
    (line,) = lines(view.frame(APP_TO_RELAY, T0 + 0.0004, 1, ack("e1")))
    assert " #1  ← calling.call.state       8d19821f answered · ack 0.4 ms" in line
    assert view.finish() == b""


def test_later_lines_of_the_same_connection_wait_behind_a_held_event_while_others_flow() -> None:
    view = plain()
    assert view.frame(RELAY_TO_APP, T0, 1, event("e1")) == b""
    assert view.frame(APP_TO_RELAY, T0 + 0.001, 1, request("r1", "calling.play")) == b""
    (other,) = lines(view.frame(APP_TO_RELAY, T0 + 0.002, 2, request("r2", "calling.record")))
    assert "#2 " in other and "calling.record" in other
    out = lines(view.frame(APP_TO_RELAY, T0 + 0.003, 1, ack("e1")))
    assert len(out) == 2 and "calling.call.state" in out[0] and "ack 3.0 ms" in out[0]
    assert "calling.play" in out[1]


def test_two_held_events_go_out_in_order_whichever_is_acked_first() -> None:
    view = plain()
    view.frame(RELAY_TO_APP, T0, 1, event("e1", "calling.call.state"))
    view.frame(RELAY_TO_APP, T0 + 0.001, 1, event("e2", "calling.call.play"))
    assert view.frame(APP_TO_RELAY, T0 + 0.002, 1, ack("e2")) == b""
    out = lines(view.frame(APP_TO_RELAY, T0 + 0.003, 1, ack("e1")))
    assert ["calling.call.state" in out[0], "calling.call.play" in out[1]] == [True, True]
    assert "ack 3.0 ms" in out[0] and "ack 1.0 ms" in out[1]


def test_a_missing_ack_is_flagged_by_tick_after_five_seconds_highlighted() -> None:
    view = ProxyView(Style(True))
    view.frame(RELAY_TO_APP, T0, 1, event("e1"))
    view.frame(APP_TO_RELAY, T0 + 1, 1, request("r1"))
    assert view.tick(T0 + 4.9) == b""
    out = lines(view.tick(T0 + 5.0))
    assert len(out) == 2 and out[0].endswith(f"{RED} · no ACK in 5 s\x1b[0m") and "calling.answer" in out[1]
    assert view.tick(T0 + 60) == b""
    assert view.stats.missing == 1


def test_a_closed_connection_releases_its_held_lines_flagged() -> None:
    view = plain()
    view.frame(RELAY_TO_APP, T0, 1, event("e1"))
    view.frame(RELAY_TO_APP, T0, 2, event("e1"))
    view.frame(APP_TO_RELAY, T0 + 1, 1, request("r1"))
    assert view.link(LinkInfo(1, "open", T0)) == b""
    out = lines(view.link(LinkInfo(1, "closed", T0 + 2, 1006)))
    assert len(out) == 2 and out[0].endswith(" · no ACK, closed") and "#1 " in out[0] and "calling.answer" in out[1]
    assert view.link(LinkInfo(1, "closed", T0 + 2)) == b""
    (held,) = lines(view.finish())
    assert "#2 " in held and held.endswith(" · no ACK")
    assert view.stats.missing == 1 and view.stats.awaiting == 1


def test_finish_lets_every_held_line_go_in_connection_order() -> None:
    view = plain()
    view.frame(RELAY_TO_APP, T0, 2, event("a"))
    view.frame(RELAY_TO_APP, T0, 1, event("b"))
    view.frame(APP_TO_RELAY, T0, 1, request("r"))
    out = lines(view.finish())
    assert [line.split()[1] for line in out] == ["#1", "#1", "#2"]
    assert out[0].endswith("no ACK") and not out[1].endswith("no ACK")
    assert view.finish() == b""


def test_a_flood_behind_an_unacked_event_is_bounded() -> None:
    view = plain()
    view.frame(RELAY_TO_APP, T0, 1, event("first"))
    for i in range(HELD + 5):
        view.frame(RELAY_TO_APP, T0, 1, event(f"e{i}"))
    assert sum(len(q) for q in view._queues.values()) <= HELD
    assert all(len(q) <= HELD for q in view._queues.values())


def test_verbose_shows_acks_pings_and_pongs_as_relay_serve_does() -> None:
    frames = [
        (RELAY_TO_APP, event("e1")),
        (APP_TO_RELAY, ack("e1")),
        (RELAY_TO_APP, b'{"jsonrpc":"2.0","id":"p1","method":"signalwire.ping","params":{}}'),
        (APP_TO_RELAY, ack("p1")),
    ]
    quiet, loud = plain(), plain(verbose=True)
    quiet_out = b"".join(quiet.frame(d, T0 + i * 0.02, 1, raw) for i, (d, raw) in enumerate(frames))
    loud_out = lines(b"".join(loud.frame(d, T0 + i * 0.02, 1, raw) for i, (d, raw) in enumerate(frames)))
    assert len(lines(quiet_out)) == 1
    assert len(loud_out) == 4 and loud_out[0].endswith("· ack 20 ms")
    assert "→ calling.call.receive" not in loud_out[1] and loud_out[1].endswith("8d19821f ack · 20 ms")
    assert "← signalwire.ping" in loud_out[2] and loud_out[3].endswith("pong · 20 ms")


def test_lines_other_than_events_are_relay_serves() -> None:
    frames = [
        (APP_TO_RELAY, request("r1", "calling.play", play=[{"type": "tts", "params": {"text": "Hi"}}])),
        (RELAY_TO_APP, result("r1")),
        (RELAY_TO_APP, b"garbage \x1b[2J"),
    ]
    serve, proxy = FrameView(Style(True)), ProxyView(Style(True))
    for i, (direction, raw) in enumerate(frames[:2]):
        assert proxy.frame(direction, T0 + i, 1, raw) == serve(direction, T0 + i, "c", None, raw)
    flagged = proxy.frame(RELAY_TO_APP, T0, 1, frames[2][1]).decode()
    assert "(not JSON-RPC)" in flagged and "not JSON: garbage \\x1b[2J" in flagged and "\x1b[2J" not in flagged
    assert RED in flagged


def test_binary_and_oversized_frames_are_shown_with_their_problem() -> None:
    view = plain()
    (binary,) = lines(view.frame(RELAY_TO_APP, T0, 1, b"\x00\x01\x02", text=False))
    assert binary.endswith("(not JSON-RPC)           binary frame (3 bytes)")
    big = b'{"jsonrpc":"2.0","id":1,"method":"calling.play","params":{"x":"' + b"a" * (10 * 2**20) + b'"}}'
    (over,) = lines(view.frame(APP_TO_RELAY, T0, 1, big))
    assert "over the 10 MiB frame limit: " in over and f"({len(big)} bytes)" in over
    assert view.stats.flagged == {"binary frame": 1, "over the 10 MiB frame limit": 1}


def test_hostile_text_is_escaped_for_the_terminal() -> None:
    view = plain()
    view.frame(RELAY_TO_APP, T0, 1, event("e\x1b]0;x\x07", "calling.\x1b[31mevil", call="\u202eabc"))
    out = view.frame(APP_TO_RELAY, T0, 1, request("r", "calling.\x1b[2Jplay", tag="\x9b31m"))
    out += view.finish()
    text = out.decode()
    assert "\x1b" not in text and "\u202e" not in text and "\x9b" not in text and "\x07" not in text
    assert "\\x1b[31mevil" in text and "\\x1b[2Jplay" in text


def test_connect_secrets_are_redacted_in_both_forms() -> None:
    connect = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": "c",
            "method": "signalwire.connect",
            "params": {
                "authentication": {"project": "p", "token": "PT-secret-token-value", "jwt_token": "eyJ-secret-jwt"},
                "authorization_state": "state-secret-value",
                "contexts": ["default"],
                "protocol": "signalwire_abc",
            },
        }
    )
    pretty, records = plain(), plain(json=True)
    shown = pretty.frame(APP_TO_RELAY, T0, 1, connect) + records.frame(APP_TO_RELAY, T0, 1, connect)
    for secret in (b"PT-secret", b"eyJ-secret", b"state-secret"):
        assert secret not in shown
    assert b"contexts default resuming" in shown
    record = orjson.loads(records.frame(APP_TO_RELAY, T0, 1, connect))
    assert record["frame"]["params"]["authentication"] == "[redacted]"
    assert record["frame"]["params"]["authorization_state"] == "[redacted]"
    assert pretty.stats.resumes == 1


def test_json_records_are_relay_serves_one_per_frame_never_held() -> None:
    frames = [
        (RELAY_TO_APP, event("e1")),
        (APP_TO_RELAY, request("r1")),
        (APP_TO_RELAY, ack("e1")),
        (RELAY_TO_APP, b"not json"),
    ]
    serve, proxy = FrameView(Style(False), json=True), plain(json=True)
    for i, (direction, raw) in enumerate(frames):
        kind = None if raw == b"not json" else proxy.conversation.see(direction, 0, 9, raw).kind
        mine = proxy.frame(direction, T0 + i, 1, raw)
        assert mine == serve(direction, T0 + i, "c", kind, raw) and mine.count(b"\n") == 1
    assert orjson.loads(proxy.frame(RELAY_TO_APP, T0, 1, event("e2"))) == {
        "dir": "relay>app",
        "t": T0,
        "conn": 1,
        "frame": orjson.loads(event("e2")),
    }
    assert proxy.tick(T0 + 60) == b"" and proxy.finish() == b""
    assert proxy.stats.missing == 1 and proxy.stats.acks.count == 1


def test_terminal_json_escapes_what_a_terminal_would_act_on() -> None:
    view = plain(json=True, terminal=True)
    out = view.frame(RELAY_TO_APP, T0, 1, event("e", call="\u202e\x7f"))
    assert b"\xe2\x80\xae" not in out and b"\x7f" not in out and b"\\u202e" in out


def test_lines_fit_the_width_with_the_ack_flag() -> None:
    view = plain(width=80)
    long = "x" * 300
    view.frame(RELAY_TO_APP, T0, 1, event("e1", "calling.call.play", state="playing", url=long))
    view.frame(RELAY_TO_APP, T0, 1, event("e2", "calling.call.play", state="playing", url=long))
    out = lines(view.frame(APP_TO_RELAY, T0 + 0.001, 1, ack("e1")))
    out += lines(view.link(LinkInfo(1, "closed", T0 + 1)))
    assert len(out) == 2 and out[0].endswith(" · ack 1.0 ms") and out[1].endswith(" · no ACK, closed")
    assert all(len(line) <= 80 for line in out), out


def test_the_filter_hides_frames_but_stats_and_pairing_see_them() -> None:
    view = plain(accept=FrameFilter(methods="calling.play"))
    assert view.frame(RELAY_TO_APP, T0, 1, event("e1")) == b""
    assert view.frame(APP_TO_RELAY, T0, 1, request("r1", "calling.answer")) == b""
    assert view.frame(RELAY_TO_APP, T0 + 0.01, 1, result("r1")) == b""
    assert view.frame(APP_TO_RELAY, T0 + 0.01, 1, ack("e1")) == b""
    assert "calling.play" in view.frame(APP_TO_RELAY, T0, 1, request("r2", "calling.play")).decode()
    assert "· 5.0 ms" in view.frame(RELAY_TO_APP, T0 + 0.005, 1, result("r2")).decode()
    assert view.finish() == b""
    stats = view.stats
    assert stats.requests["calling.answer"].count == 1 and stats.events == {"calling.call.state": 1}
    assert stats.acks.count == 1 and stats.frames == {APP_TO_RELAY: 3, RELAY_TO_APP: 3}


def test_an_event_the_filter_shows_still_waits_for_a_hidden_ack() -> None:
    view = plain(accept=FrameFilter(direction="relay>app"))
    assert view.frame(RELAY_TO_APP, T0, 1, event("e1")) == b""
    (line,) = lines(view.frame(APP_TO_RELAY, T0 + 0.002, 1, ack("e1")))
    assert line.endswith("answered · ack 2.0 ms")


def test_an_ambiguous_call_id_is_kept_for_the_caller_and_hides_the_second_call() -> None:
    view = plain(accept=FrameFilter(call_id="8d19"))
    assert view.frame(APP_TO_RELAY, T0, 1, request("r1")) != b""
    assert view.frame(APP_TO_RELAY, T0, 1, request("r2", call_id="8d19ffff")) == b""
    assert view.error is not None and "--call-id '8d19' is ambiguous" in str(view.error)


def test_stats_lines_give_counts_errors_and_quantiles() -> None:
    view = plain()
    for i in range(100):
        view.frame(APP_TO_RELAY, T0 + i, 1, request(f"a{i}", "calling.play"))
        view.frame(RELAY_TO_APP, T0 + i + (i + 1) / 1000, 1, result(f"a{i}", "200" if i % 10 else "500"))
        view.frame(RELAY_TO_APP, T0 + i, 1, event(f"e{i}"))
        if i < 99:
            view.frame(APP_TO_RELAY, T0 + i + 0.0004, 1, ack(f"e{i}"))
    view.frame(APP_TO_RELAY, T0, 1, b'{"jsonrpc":"2.0","id":"x","error":{"code":-1}}')
    view.frame(RELAY_TO_APP, T0, 1, b"junk")
    view.link(LinkInfo(1, "open", T0))
    view.link(LinkInfo(2, "open", T0 + 200))
    view.tick(T0 + 300)
    text = "\n".join(view.stats.lines())
    assert "requests by method (100)" in text
    play = next(line for line in text.splitlines() if "calling.play" in line)
    assert play.split()[:4] == ["calling.play", "100", "10", "errors"]
    assert "p50 50 ms" in play and "p99 99 ms" in play and "max 100 ms" in play
    assert "events by type (100)" in text and "calling.call.state  100" in text
    assert "ACKs 99  p50 0.4 ms  p99 0.4 ms  max 0.4 ms  missing 1" in text
    assert "connections 2  reconnects 1  resumes 0" in text
    assert "frames app>relay 200  relay>app 201  flagged 1 (not JSON 1)" in text
    assert "answers to no request seen 1" in text


def test_stats_keep_relays_requests_to_the_app_apart_from_the_apps_own() -> None:
    view = plain()
    ping = b'{"jsonrpc":"2.0","id":"%s","method":"signalwire.ping","params":{}}'
    view.frame(APP_TO_RELAY, T0, 1, ping % b"a1")
    view.frame(RELAY_TO_APP, T0 + 0.002, 1, b'{"jsonrpc":"2.0","id":"a1","result":{}}')
    for i in range(3):
        view.frame(RELAY_TO_APP, T0 + 1 + i, 1, ping % b"r%d" % i)
        answer = (
            b'{"jsonrpc":"2.0","id":"r%d","error":{"code":-32603,"message":"no"}}'
            if i == 2
            else b'{"jsonrpc":"2.0","id":"r%d","result":{}}'
        )
        view.frame(APP_TO_RELAY, T0 + 1 + i + 0.5, 1, answer % i)
    lines = view.stats.lines()
    mine = lines.index("requests by method (1)")
    assert lines[mine + 1].split()[:2] == ["signalwire.ping", "1"]
    assert "error" not in lines[mine + 1] and "p50 2.0 ms" in lines[mine + 1]
    theirs = lines.index("requests from RELAY (3)")
    assert lines[theirs + 1].split()[:4] == ["signalwire.ping", "3", "1", "error"]
    assert "p50 500 ms" in lines[theirs + 1]


def test_without_lines_a_view_renders_nothing_and_counts_what_a_rendering_view_counts() -> None:
    """``-o none``: the summary is the same, and no line is ever built (every call gives b"")."""
    rendering, counting = plain(), plain(lines=False)
    for view in (rendering, counting):
        out = [view.link(LinkInfo(1, "open", T0))]
        for i in range(20):
            out.append(view.frame(APP_TO_RELAY, T0 + i, 1, request(f"a{i}", "calling.play")))
            out.append(view.frame(RELAY_TO_APP, T0 + i + 0.003, 1, result(f"a{i}", "200" if i % 4 else "404")))
            out.append(view.frame(RELAY_TO_APP, T0 + i, 1, event(f"e{i}")))
            if i % 5:
                out.append(view.frame(APP_TO_RELAY, T0 + i + 0.001, 1, ack(f"e{i}")))
        out += [view.frame(RELAY_TO_APP, T0, 1, b"junk"), view.tick(T0 + 16), view.link(LinkInfo(1, "closed", T0 + 30))]
        out += [view.finish()]
        if view is counting:
            assert set(out) == {b""}
        else:
            assert b"no ACK" in b"".join(out)
    assert counting.stats.lines() == rendering.stats.lines()
    assert "missing 4" in "\n".join(counting.stats.lines())


def test_stats_of_nothing_say_so() -> None:
    text = "\n".join(plain().stats.lines())
    assert "no requests" in text and "no events" in text and "ACKs 0  missing 0" in text


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_quantiles_are_within_one_percent_of_the_exact(seed: int) -> None:
    rng = random.Random(seed)
    samples = [rng.lognormvariate(-6, 2) for _ in range(20_000)] + [0.0, 1e-12]
    hist = Histogram()
    for value in samples:
        hist.add(value)
    ordered = sorted(samples)
    for q in (0.01, 0.1, 0.5, 0.9, 0.99, 0.999):
        exact = nearest_rank(ordered, q * 100)
        assert abs(hist.quantile(q) - exact) <= ERROR * exact + 1e-9, q
    assert hist.max == ordered[-1] and hist.min == 0.0 and hist.quantile(1.0) == ordered[-1]
    assert hist.count == len(samples) and len(hist) < 1_500


def test_histogram_memory_stays_flat_and_odd_values_do_no_harm() -> None:
    hist = Histogram()
    rng = random.Random(7)
    for _ in range(200_000):
        hist.add(rng.uniform(0.0001, 0.5))
    for _ in range(200_000):
        hist.add(rng.uniform(0.0001, 0.5))
    assert len(hist) <= math.log(0.5 / 0.0001) / math.log(GAMMA) + 2  # the range's buckets, not the samples'

    hist.add(math.nan)
    hist.add(math.inf)
    hist.add(-1.0)
    assert hist.count == 400_002 and hist.min == -1.0
    assert math.isnan(Histogram().quantile(0.5))
