"""The handles :meth:`RelayServer.call` and :meth:`RelayServer.message` return, and what they end with.

A handle follows its call or message through the control plane (``/relay/calls/{id}``, ``/relay/messages/{id}``) to
its end; a call's :class:`CallResult` adds what the app did on the call, read from the journal: what it played,
the digits it collected, its recordings, where it connected the caller.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from relay_cli.lifecycles import ENDED, INBOUND_MESSAGE, MESSAGE
from relay_cli.testing.journal import Journal
from relay_cli.testing.waiting import DEFAULT_TIMEOUT, RelayTimeout, apoll, not_in_loop, poll

if TYPE_CHECKING:
    from relay_cli.testing.server import RelayServer

__all__ = ["CallHandle", "CallResult", "MessageHandle", "MessageResult", "call_result", "message_result"]

__tracebackhide__ = True  # failures point at the test's line, never at the plugin's insides

_FINAL_MESSAGE = frozenset((*MESSAGE.final, *INBOUND_MESSAGE.final))


@dataclass(frozen=True)
class CallResult:
    """What became of a call (so far): its state from the control plane, what the app did on it from the journal."""

    call_id: str
    state: str
    answered: bool
    end_reason: str | None
    from_number: str
    to_number: str
    played: list[str] = field(default_factory=list)
    """What the app played on the call, in order: each TTS text, audio URL, or the media type otherwise."""
    collected: list[dict[str, Any]] = field(default_factory=list)
    """The ``result`` of each collect the app ran (``{"type": "digit", "params": {"digits": ...}}``, ``no_input``)."""
    digits: str = ""
    """Every digit the app collected, joined."""
    recordings: list[dict[str, Any]] = field(default_factory=list)
    """The finished recordings (``url``, ``duration``, ...) the app made of the call."""
    connected_to: str | None = None
    """The number the app last connected the call to (``calling.connect`` reached ``connected``)."""
    status: dict[str, Any] = field(default_factory=dict)
    """``GET /relay/calls/{id}`` as it answered."""

    @property
    def ended(self) -> bool:
        return self.state == ENDED


@dataclass(frozen=True)
class MessageResult:
    """A message's state from the control plane."""

    message_id: str
    direction: str
    from_number: str
    to_number: str
    body: str
    state: str
    reason: str | None
    status: dict[str, Any] = field(default_factory=dict)


class CallHandle:
    """A call a far end placed (:meth:`RelayServer.call`): follow it to its end with :meth:`wait` or :meth:`ended`."""

    def __init__(self, server: RelayServer, call_id: str, to: str, from_: str, sent_to: list[str]) -> None:
        self.server = server
        self.call_id = call_id
        self.to = to
        self.from_ = from_
        self.sent_to = sent_to
        """The sessions it was offered to: empty when no app receives on its context (it rings out unseen)."""

    def __repr__(self) -> str:
        return f"CallHandle({self.call_id!r}, to={self.to!r})"

    def status(self) -> dict[str, Any]:
        """``GET /relay/calls/{id}``: state, answered, end_reason, ..."""
        return self.server._get(f"/relay/calls/{quote(self.call_id, safe='')}", "the call's status")

    def result(self) -> CallResult:
        """The call as it is now, ended or not."""
        return call_result(self.status(), self.server.journal())

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> CallResult:
        """Block until the call has ended; its :class:`CallResult`."""
        not_in_loop("call.wait()", "await call.ended()")
        return poll(self._ended, timeout, self._timed_out)

    async def ended(self, timeout: float = DEFAULT_TIMEOUT) -> CallResult:
        """Wait in a coroutine until the call has ended; its :class:`CallResult`."""
        return await apoll(self._ended, timeout, self._timed_out)

    def __await__(self) -> Generator[Any, None, CallResult]:
        """``await call``: the same as ``await call.ended()``."""
        return self.ended().__await__()

    def _ended(self) -> CallResult | None:
        status = self.status()
        return call_result(status, self.server.journal()) if status.get("state") == ENDED else None

    def _timed_out(self, timeout: float) -> RelayTimeout:
        status = self.status()
        now = status.get("state")
        if status.get("answered") and now != ENDED:
            now = f"{now} (answered)"
        hint = "" if self.sent_to else "; no app received it (none receives on its context)"
        what = f"call {self.call_id} to {self.to} did not end within {timeout:g} s: it is {now}{hint}"
        return self.server.timed_out(what)


class MessageHandle:
    """A message: one a far end sent the app (:meth:`RelayServer.message`), or one the app sent (a :meth:`reply`)."""

    def __init__(self, server: RelayServer, message_id: str, to: str, from_: str, body: str) -> None:
        self.server = server
        self.message_id = message_id
        self.to = to
        self.from_ = from_
        self.body = body

    def __repr__(self) -> str:
        return f"MessageHandle({self.message_id!r}, to={self.to!r}, body={self.body[:40]!r})"

    def status(self) -> dict[str, Any]:
        """``GET /relay/messages/{id}``: direction, state, reason, body, ..."""
        return self.server._get(f"/relay/messages/{quote(self.message_id, safe='')}", "the message's status")

    def result(self) -> MessageResult:
        return message_result(self.status())

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> MessageResult:
        """Block until the message reached its final state: received by an app, or delivered, undelivered, failed."""
        not_in_loop("message.wait()", "await message.ended()")
        return poll(self._final, timeout, self._not_final)

    async def ended(self, timeout: float = DEFAULT_TIMEOUT) -> MessageResult:
        return await apoll(self._final, timeout, self._not_final)

    def __await__(self) -> Generator[Any, None, MessageResult]:
        """``await message``: the same as ``await message.ended()``."""
        return self.ended().__await__()

    def reply(self, timeout: float = DEFAULT_TIMEOUT) -> MessageHandle:
        """Block until the app has sent a message back to this one's sender; a handle on that reply."""
        not_in_loop("message.reply()", "await message.replied()")
        return poll(self._reply, timeout, self._no_reply)

    async def replied(self, timeout: float = DEFAULT_TIMEOUT) -> MessageHandle:
        return await apoll(self._reply, timeout, self._no_reply)

    def _final(self) -> MessageResult | None:
        status = self.status()
        if status.get("state") not in _FINAL_MESSAGE:
            return None
        if status.get("direction") == "inbound" and not status.get("session_id"):
            return None  # not received yet: nobody receives on its context
        return message_result(status)

    def _not_final(self, timeout: float) -> RelayTimeout:
        status = self.status()
        if status.get("direction") == "inbound" and not status.get("session_id"):
            what = f"message {self.message_id} to {self.to} was not received: no app receives on its context"
        else:
            what = f"message {self.message_id} to {self.to} is {status.get('state')} after {timeout:g} s"
        return self.server.timed_out(what)

    def _reply(self) -> MessageHandle | None:
        messages = self.server.messages()
        ids = [m.get("message_id") for m in messages]
        after = ids.index(self.message_id) + 1 if self.message_id in ids else 0
        for m in messages[after:]:
            if m.get("direction") == "outbound" and m.get("to_number") == self.from_:
                return MessageHandle(self.server, m["message_id"], m["to_number"], m["from_number"], m.get("body", ""))
        return None

    def _no_reply(self, timeout: float) -> RelayTimeout:
        what = f"no message to {self.from_} (a reply to {self.message_id}) within {timeout:g} s"
        return self.server.timed_out(what)


def call_result(status: dict[str, Any], journal: Journal) -> CallResult:
    call_id = str(status.get("call_id", ""))
    mine = {"call_id": call_id}
    played = [text for p in journal.request_params("calling.play*", where=mine) for text in _media(p.get("play"))]
    collected = [
        p["result"]
        for p in journal.event_params("calling.call.collect", where=mine)
        if isinstance(p.get("result"), dict) and p.get("final") is not False
    ]
    digits = "".join(str(r.get("params", {}).get("digits", "")) for r in collected if r.get("type") == "digit")
    recordings = [
        {k: v for k, v in p.items() if k not in ("call_id", "node_id", "control_id", "state")}
        for p in journal.event_params("calling.call.record", where={**mine, "state": "finished"})
    ]
    connected_to = None
    for p in journal.event_params("calling.call.connect", where={**mine, "connect_state": "connected"}):
        device = p.get("peer", {}).get("device", {})
        number = device.get("params", {}).get("to_number") if isinstance(device, dict) else None
        connected_to = number if isinstance(number, str) else connected_to
    return CallResult(
        call_id=call_id,
        state=str(status.get("state", "")),
        answered=bool(status.get("answered")),
        end_reason=status.get("end_reason"),
        from_number=str(status.get("from_number", "")),
        to_number=str(status.get("to_number", "")),
        played=played,
        collected=collected,
        digits=digits,
        recordings=recordings,
        connected_to=connected_to,
        status=status,
    )


def _media(items: Any) -> list[str]:
    """Each play item as a test names it: the TTS text, the audio URL, or its type."""
    out: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        params = item.get("params")
        params = params if isinstance(params, dict) else {}
        shown = params.get("text") or params.get("url") or item.get("type")
        if isinstance(shown, str):
            out.append(shown)
    return out


def message_result(status: dict[str, Any]) -> MessageResult:
    return MessageResult(
        message_id=str(status.get("message_id", "")),
        direction=str(status.get("direction", "")),
        from_number=str(status.get("from_number", "")),
        to_number=str(status.get("to_number", "")),
        body=str(status.get("body", "")),
        state=str(status.get("state", "")),
        reason=status.get("reason"),
        status=status,
    )
