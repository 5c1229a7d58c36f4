"""A small phone menu on SignalWire RELAY, written with SignalWire's own SDK and nothing of relay's.

A caller hears a greeting and "press 1 for sales, 2 for support", and is connected to that team; with no
answer, a wrong key, or a busy team, the caller leaves a voicemail instead. A text message gets a reply.

Settings come from the environment, as the SDK reads them: SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN,
SIGNALWIRE_SPACE (and SIGNALWIRE_RELAY_CA_FILE for a local server); the menu's numbers from IVR_SALES_NUMBER and
IVR_SUPPORT_NUMBER. Run it against a local relay, with the two settings ``relay serve --tls`` prints::

    relay serve --tls &
    SIGNALWIRE_SPACE=127.0.0.1:8765 SIGNALWIRE_RELAY_CA_FILE=~/.config/relay/ca/relay-ca.pem \
        SIGNALWIRE_PROJECT_ID=p SIGNALWIRE_API_TOKEN=t python examples/ivr/app.py &
    relay call --to +15550001000 --press 2 --wait

Its tests, ``examples/ivr/test_ivr.py``, run it against the ``relay_server`` pytest fixture.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from signalwire.relay.call import Call
from signalwire.relay.client import RelayClient
from signalwire.relay.message import Message

CONTEXT = os.environ.get("IVR_CONTEXT", "default")
SALES = os.environ.get("IVR_SALES_NUMBER", "+15550001001")
SUPPORT = os.environ.get("IVR_SUPPORT_NUMBER", "+15550001002")
TEAMS = {"1": SALES, "2": SUPPORT}

GREETING = "Thanks for calling Example Company."
MENU = "Press 1 for sales, or 2 for support."
NOT_AN_OPTION = "Sorry, that is not an option."
BUSY = "Everyone on that team is busy right now."
VOICEMAIL = "Please leave a message after the tone."
GOODBYE = "Thank you for calling. Goodbye."
SMS_REPLY = "Thanks for your message! Call us and press 1 for sales or 2 for support."

MENU_TIMEOUT = 5.0
"""Seconds the menu waits for a key before it counts as no answer."""
RING_TIMEOUT = 20
"""Seconds a team's phone rings before it counts as busy."""

log = logging.getLogger("ivr")


def create_client() -> RelayClient:
    """The app: an SDK client on CONTEXT with its call and message handlers. ``run()`` it, or ``connect()`` it
    on a loop of your own (as the tests do)."""
    client = RelayClient(contexts=[CONTEXT])

    async def on_message(message: Message) -> None:
        await reply(client, message)

    client.on_call(handle_call)
    client.on_message(on_message)
    return client


async def handle_call(call: Call) -> None:
    """Answer, offer the menu, connect the caller to the team chosen or take a voicemail, hang up."""
    await call.answer()
    key = await menu(call)
    team = TEAMS.get(key or "")
    log.info("call %s: pressed %r", call.call_id, key)
    if team is None:
        await voicemail(call, NOT_AN_OPTION if key else "")
    elif await connect(call, team):
        await call.wait_for("calling.call.connect", lambda e: e.params.get("connect_state") == "disconnected")
    else:
        await voicemail(call, BUSY)
    if call.state not in ("ending", "ended"):
        await call.hangup()


async def menu(call: Call) -> str | None:
    """The greeting and the menu; the key pressed, None when there was none."""
    prompt = [tts(GREETING), tts(MENU)]
    collect = await call.play_and_collect(prompt, {"digits": {"max": 1}, "initial_timeout": MENU_TIMEOUT})
    result: dict[str, Any] = (await collect.wait()).params.get("result") or {}
    if result.get("type") != "digit":
        return None
    return str(result["params"]["digits"])


async def connect(call: Call, number: str) -> bool:
    """Bridge the caller to ``number``; whether it answered."""
    decided = asyncio.ensure_future(
        call.wait_for("calling.call.connect", lambda e: e.params.get("connect_state") in ("connected", "failed"))
    )
    own = (call.device or {}).get("params", {}).get("to_number", SALES)
    device = {"type": "phone", "params": {"to_number": number, "from_number": own, "timeout": RING_TIMEOUT}}
    await call.connect([[device]])
    event = await decided
    log.info("call %s: %s %s", call.call_id, number, event.params["connect_state"])
    return bool(event.params["connect_state"] == "connected")


async def voicemail(call: Call, why: str) -> None:
    """Say why, take a message, say goodbye."""
    for text in (why, VOICEMAIL):
        if text:
            await (await call.play_tts(text)).wait()
    recording = await call.record({"beep": True, "end_silence_timeout": 2, "initial_timeout": 5})
    done = await recording.wait()
    log.info("call %s: voicemail %s %s", call.call_id, done.params.get("state"), done.params.get("url", ""))
    await (await call.play_tts(GOODBYE)).wait()


async def reply(client: RelayClient, message: Message) -> None:
    """Answer a text message from the number it was sent to."""
    log.info("message from %s: %r", message.from_number, message.body)
    await client.send_message(
        context=CONTEXT, to_number=message.from_number, from_number=message.to_number, body=SMS_REPLY
    )


def tts(text: str) -> dict[str, Any]:
    return {"type": "tts", "params": {"text": text}}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    create_client().run()


if __name__ == "__main__":
    main()
