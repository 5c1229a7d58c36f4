"""The ``relay_server`` pytest plugin as a user meets it: test files of a project with no configuration, run by pytest
(``pytester``), and the fixture's API used straight from this module, since relay's own pytest has the plugin too.

The inner runs are in-process and use the official SDK as the app, over wss:// with the fixture's CA. Modules an
inner run needs are imported here first: pytester forgets the modules a run imported, and ``cryptography``'s
compiled core cannot be loaded twice in one process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from signalwire.relay.client import RelayClient

import relay_cli.certs  # noqa: F401 (loaded before any inner run: see the docstring)
from relay_cli.testing import RelayServer, RelayTimeout
from relay_cli.testing.plugin import seed_for

pytest_plugins = ["pytester"]

T = TypeVar("T")


async def with_app(body: Callable[[], Awaitable[T]]) -> T:
    """An SDK app connected while ``body`` runs: it answers, asks for a code, hangs up."""
    client = RelayClient(contexts=["default"])  # everything else from SIGNALWIRE_*, as the fixture set them

    @client.on_call
    async def on_call(call: Any) -> None:
        await call.answer()
        prompt = [{"type": "tts", "params": {"text": "Your code, then pound."}}]
        collect = await call.play_and_collect(prompt, {"digits": {"max": 8, "terminators": "#"}})
        await collect.wait()
        await call.hangup()

    await client.connect()
    try:
        return await body()
    finally:
        await client.disconnect()


APP = "from typing import Any\nfrom signalwire.relay.client import RelayClient\n\n\n" + inspect.getsource(
    with_app
).replace("Callable[[], Awaitable[T]]", "Any").replace(") -> T:", ") -> Any:")
"""The same app as the inner projects' ``helper.py``."""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: a helper app module, no conftest, no ini file."""
    pytester.makepyfile(helper=APP)
    return pytester


def test_a_project_with_no_configuration_finds_the_fixture_and_its_marker(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import os

        def test_where_an_app_connects(relay_server):
            host, port = relay_server.host.rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) > 0
            assert open(relay_server.ca_file).read().startswith("-----BEGIN CERTIFICATE-----")
            assert relay_server.env == {
                "SIGNALWIRE_SPACE": relay_server.host,
                "SIGNALWIRE_RELAY_CA_FILE": relay_server.ca_file,
                "SIGNALWIRE_PROJECT_ID": relay_server.project,
                "SIGNALWIRE_API_TOKEN": relay_server.token,
                "RELAY_CONTROL": relay_server.control_url,
            }
            assert {k: os.environ[k] for k in relay_server.env} == relay_server.env
            assert relay_server.speed == 20 and relay_server.mode == "app"
        """
    )
    result = project.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    markers = project.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.relay(speed=20, seed=None, *"])


def test_a_wait_that_times_out_names_what_it_awaited_and_shows_the_last_frames(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import asyncio
        from helper import with_app

        def test_waits_for_a_connect_the_app_never_sends(relay_server):
            async def scenario():
                relay_server.call(to="+15550001000", press="42#")
                await relay_server.wait_for_async(method="calling.connect", timeout=1)

            asyncio.run(with_app(scenario))
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *.RelayTimeout: relay_server.wait_for: no request calling.connect within 1 s",
            "E * the journal's last 10 frames of * (ACKs and pings left out):",
            "E  * → calling.play_and_collect *",
            "E  * ← calling.call.collect * digit 42#",
            "E  * → calling.end *",
            "E  * ← calling.call.state * ended*",
            "E * relay_server: seed *, speed 20, mode app; * (rerun with @pytest.mark.relay(seed=*))",
            "*- relay_server -*",
        ]
    )
    out = result.stdout.str()
    assert "relay_cli/testing/" not in out  # no traceback from the plugin's insides
    assert "Traceback" not in out


def test_a_failing_assertion_gets_the_seed_and_the_journal_in_its_report(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        def test_fails(relay_server):
            relay_server.call(to="+15550001000")
            assert relay_server.journal().requests() == ["something"]
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    seed = seed_for("test_it.py::test_fails")
    result.stdout.fnmatch_lines(
        [
            "*- relay_server -*",
            f"relay_server: seed {seed}, speed 20, mode app; *",
            "the journal is empty: no app has connected *",
            "emulator log (last lines):",
            "  RELAY emulator on wss://127.0.0.1:*",
        ]
    )


def test_sync_tests_async_tests_and_an_asyncio_plugin_all_drive_calls_to_their_end(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import asyncio
        import pytest
        from helper import with_app

        def test_sync_a_call_nobody_answers_rings_out(relay_server):
            result = relay_server.call(to="+15550001000", press="1").wait()
            assert (result.state, result.answered, result.end_reason) == ("ended", False, "noAnswer")
            assert result.ended and result.played == [] and result.digits == ""

        def test_async_with_asyncio_run(relay_server):
            async def scenario():
                call = relay_server.call(to="+15550001000", press="1234#")
                entry = await relay_server.wait_for_async(event_type="calling.call.collect")
                assert entry["frame"]["params"]["params"]["call_id"] == call.call_id
                return await call.ended()

            result = asyncio.run(with_app(scenario))
            assert result.answered and result.end_reason == "hangup"
            assert result.played == ["Your code, then pound."]
            assert result.digits == "1234"
            assert result.collected == [{"type": "digit", "params": {"digits": "1234", "terminator": "#"}}]

        @pytest.mark.relay(speed=50, seed=7)
        def test_the_marker_sets_speed_and_seed(relay_server):
            assert (relay_server.speed, relay_server.seed) == (50, 7)

        @pytest.mark.parametrize("relay_server", [{"speed": 40}], indirect=True)
        def test_an_indirect_parameter_sets_them_too(relay_server):
            assert relay_server.speed == 40

        anyio = pytest.importorskip("anyio")

        @pytest.mark.anyio
        async def test_under_an_async_test_plugin(relay_server):
            async def scenario():
                call = relay_server.call(to="+15550001000", press="9#")
                return await call.ended()

            result = await with_app(scenario)
            assert result.digits == "9"

        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """
    )
    result = project.runpytest("-p", "no:cacheprovider", "-p", "anyio")
    result.assert_outcomes(passed=5)


def test_a_bad_marker_fails_the_test_with_one_line_naming_the_option(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.relay(sped=5)
        def test_typo(relay_server):
            pass

        @pytest.mark.relay(speed=0)
        def test_zero(relay_server):
            pass
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.relay: unknown option 'sped' (options: speed, seed, mode, far_ends, environ)",
            "*@pytest.mark.relay: speed must be a positive number",
        ]
    )


def test_an_app_run_as_a_subprocess_connects_through_env(project: pytest.Pytester) -> None:
    project.makepyfile(
        app_main="""
        import asyncio
        from helper import with_app

        asyncio.run(with_app(lambda: asyncio.sleep(30)))
        """,
        test_it="""
        import os, subprocess, sys

        def test_the_app_helper(relay_server):
            with relay_server.app(sys.executable, "app_main.py") as proc:
                result = relay_server.call(to="+15550001000", press="77#").wait()
                assert result.digits == "77" and result.end_reason == "hangup"
                assert proc.poll() is None
            assert proc.poll() is not None

        def test_a_subprocess_of_ones_own(relay_server):
            env = {**os.environ, **relay_server.env}
            with subprocess.Popen([sys.executable, "app_main.py"], env=env) as proc:
                try:
                    [session] = relay_server.wait_for_app()
                    assert session["id"]
                    entry = relay_server.wait_for(method="signalwire.connect")
                    assert entry["frame"]["params"]["contexts"] == ["default"]
                finally:
                    proc.terminate()
        """,
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_an_app_that_exits_before_connecting_fails_with_its_output(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_it="""
        import sys

        def test_broken_app(relay_server):
            with relay_server.app(sys.executable, "-c", "raise SystemExit('no settings found')"):
                pass
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E * exited with 1 before it connected; its output:", "E *no settings found"])


# -- the API, used straight from here ----------------------------------------------------------------------------


def test_journal_finders_take_patterns_and_params(relay_server: RelayServer) -> None:
    async def scenario() -> None:
        result = await relay_server.call(to="+15550001000", press="5#")  # a handle is awaitable to its end
        assert result.digits == "5"

    asyncio.run(with_app(scenario))
    journal = relay_server.journal()
    assert journal.methods() == ["signalwire.connect", "calling.answer", "calling.play_and_collect", "calling.end"]
    assert [e["direction"] for e in journal.requests("calling.*")] == ["recv"] * 3
    [collect] = journal.event_params("calling.call.collect")
    assert collect["result"]["params"]["digits"] == "5"
    states = journal.event_params("calling.call.state")
    assert [p["call_state"] for p in states][-3:] == ["answered", "ending", "ended"]  # "ringing" if it came first
    assert journal.events("calling.call.state", where={"call_state": "ended", "end_reason": "hangup"})
    assert journal.request_params("calling.end", where=lambda p: p.get("reason") == "hangup")
    assert journal.requests("messaging.*") == [] and journal.events("nothing.like.this") == []
    lines = journal.lines(3)
    assert len(lines) == 3 and "calling.call.state" in lines[-1] and "ended" in lines[-1]
    relay_server.reset_journal()
    assert relay_server.journal() == []


def test_wait_for_counts_and_is_refused_with_its_async_spelling_inside_a_loop(relay_server: RelayServer) -> None:
    async def scenario() -> None:
        first = relay_server.call(to="+15550001000", press="1#")
        second = relay_server.call(to="+15550001000", press="2#")
        entry = await relay_server.wait_for_async(method="calling.answer", count=2)
        assert entry["frame"]["params"]["call_id"] == second.call_id
        with pytest.raises(RuntimeError, match=r"use await relay_server\.wait_for_async\(\)"):
            relay_server.wait_for(method="calling.answer")
        with pytest.raises(RuntimeError, match=r"use await call\.ended\(\)"):
            first.wait()
        assert [(await c.ended()).digits for c in (first, second)] == ["1", "2"]

    asyncio.run(with_app(scenario))
    with pytest.raises(TypeError, match=r"give method= .* or event_type="):
        relay_server.wait_for(method="calling.answer", event_type="calling.call.state")
    with pytest.raises(RelayTimeout, match=r"2 of the 3 awaited \(a request calling\.answer\) within 0\.2 s"):
        relay_server.wait_for(method="calling.answer", count=3, timeout=0.2)


def test_far_end_rules_decide_outbound_calls_and_bad_ones_name_the_field(relay_server: RelayServer) -> None:
    rules = relay_server.far_end("+15550009999", answer="busy")
    assert rules["numbers"]["+15550009999"]["answer"] == "busy"
    assert relay_server.far_ends()["numbers"].keys() == {"+15550009999"}
    assert relay_server.far_ends({"numbers": {}}, replace=True)["numbers"] == {}
    with pytest.raises(ValueError, match=r"numbers\['\+1555'\]\.answer: must be one of answer, busy"):
        relay_server.far_end("+1555", answer="maybe")
    with pytest.raises(ValueError, match=r"relay_server\.call: body\.press: only digits"):
        relay_server.call(to="+15550001000", press="x")


def test_a_message_nobody_receives_times_out_saying_so(relay_server: RelayServer) -> None:
    message = relay_server.message(to="+15550001000", from_="+15557654321", body="anyone?")
    assert message.status()["state"] == "received"
    with pytest.raises(RelayTimeout, match="was not received: no app receives on its context") as caught:
        message.wait(timeout=0.2)
    assert "the journal is empty: no app has connected" in str(caught.value)
    with pytest.raises(RelayTimeout, match=r"no message to \+15557654321 \(a reply to .*\) within 0\.2 s"):
        message.reply(timeout=0.2)


def test_seeds_are_the_test_ids_own_and_differ_between_tests(request: pytest.FixtureRequest) -> None:
    assert seed_for(request.node.nodeid) == seed_for(request.node.nodeid)
    assert seed_for("a.py::test_one") != seed_for("a.py::test_two")
    assert 0 <= seed_for("x") < 2**32
