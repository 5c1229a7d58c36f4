"""The phone menu's tests: every branch, against the ``relay_server`` fixture, with no account and no configuration.

Most tests run the app in the test's own process, on an event loop of the test's (``asyncio.run``); the last one
runs it as a script, exactly as it is deployed, with the fixture's ``env``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import app
import pytest

from relay_cli.testing import RelayServer

T = TypeVar("T")
IVR = "+15550001000"
"""The menu's number: where callers call and texts go."""
CALLER = "+15557654321"
APP = Path(__file__).with_name("app.py")


def with_app(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run ``scenario`` while the app, as ``python app.py`` would start it, is connected (from ``SIGNALWIRE_*``,
    which the fixture set for the test)."""

    async def main() -> T:
        client = app.create_client()
        await client.connect()
        try:
            return await scenario()
        finally:
            await client.disconnect()

    return asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize(("key", "team"), [("1", app.SALES), ("2", app.SUPPORT)], ids=["sales", "support"])
def test_a_caller_who_presses_a_team_key_is_connected_to_that_team(
    relay_server: RelayServer, key: str, team: str
) -> None:
    relay_server.far_end(team, hangup_after=2)  # the agent answers, talks, hangs up

    async def scenario() -> None:
        call = relay_server.call(to=IVR, from_=CALLER, press=key)
        result = await call.ended()
        assert result.answered
        assert result.played == [app.GREETING, app.MENU]
        assert result.digits == key
        assert result.connected_to == team
        assert result.recordings == []
        assert result.end_reason == "hangup"

    with_app(scenario)
    [connect] = relay_server.journal().request_params("calling.connect")
    assert connect["devices"][0][0]["params"] == {"to_number": team, "from_number": IVR, "timeout": app.RING_TIMEOUT}


@pytest.mark.parametrize(
    ("press", "prompts"),
    [("", [app.VOICEMAIL]), ("7", [app.NOT_AN_OPTION, app.VOICEMAIL])],
    ids=["no-input", "wrong-key"],
)
def test_a_caller_who_presses_no_team_key_leaves_a_voicemail(
    relay_server: RelayServer, press: str, prompts: list[str]
) -> None:
    async def scenario() -> None:
        call = relay_server.call(to=IVR, from_=CALLER, press=press, say="Please call me back")
        result = await call.ended()
        assert result.played == [app.GREETING, app.MENU, *prompts, app.GOODBYE]
        assert result.digits == press
        [recording] = result.recordings
        assert recording["url"].endswith(".wav") and recording["duration"] > 0
        assert result.connected_to is None
        assert result.end_reason == "hangup"

    with_app(scenario)
    assert relay_server.journal().requests("calling.connect") == []


def test_a_busy_team_sends_the_caller_to_voicemail(relay_server: RelayServer) -> None:
    relay_server.far_end(app.SUPPORT, answer="busy")

    async def scenario() -> None:
        call = relay_server.call(to=IVR, from_=CALLER, press="2")
        result = await call.ended()
        assert result.connected_to is None
        assert result.played == [app.GREETING, app.MENU, app.BUSY, app.VOICEMAIL, app.GOODBYE]
        assert len(result.recordings) == 1

    with_app(scenario)
    legs = [c for c in relay_server.calls() if c["to_number"] == app.SUPPORT]
    assert [(leg["answered"], leg["end_reason"]) for leg in legs] == [(False, "busy")]


def test_a_text_message_gets_a_reply_from_the_number_it_was_sent_to(relay_server: RelayServer) -> None:
    async def scenario() -> None:
        message = relay_server.message(to=IVR, from_=CALLER, body="What are your hours?")
        reply = await message.replied()
        assert (reply.to, reply.from_, reply.body) == (CALLER, IVR, app.SMS_REPLY)
        assert (await reply.ended()).state == "delivered"

    with_app(scenario)


def test_the_app_run_as_a_script_takes_calls_and_texts(relay_server: RelayServer) -> None:
    relay_server.far_end(app.SALES, hangup_after=2)
    with relay_server.app(sys.executable, APP):
        result = relay_server.call(to=IVR, from_=CALLER, press="1").wait()
        assert result.connected_to == app.SALES and result.end_reason == "hangup"
        reply = relay_server.message(to=IVR, from_=CALLER, body="hi").reply()
        assert reply.body == app.SMS_REPLY
