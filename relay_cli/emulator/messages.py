"""Messages: ``messaging.send`` from the app and inbound messages from far ends, walked through their states.

An outbound message gets its result at once and then, except in ``scripted`` mode, its ``messaging.state``
events, ``queued → initiated → sent →`` delivered, undelivered or failed as the far end's script for the
``to_number`` says (:attr:`FarEnd.message`). The SDK tracks a message only once the result has reached it, so
the first state waits a little real time (:data:`FIRST_STATE_DELAY`, not scaled by ``--speed``); the gaps after
it are simulated seconds. An inbound message is one ``messaging.receive`` to one session on its context, the
sessions on a context taking turns.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from relay_cli.lifecycles import INBOUND_MESSAGE, MESSAGE
from relay_cli.protocol import INVALID_PARAMS, error, result

if TYPE_CHECKING:
    from relay_cli.emulator.methods import Handler, Request
    from relay_cli.emulator.sessions import EmulatorCore, Session

__all__ = ["FIRST_STATE_DELAY", "MAX_MESSAGES", "MESSAGE_ACCEPTED", "MESSAGE_METHODS", "Messaging"]

MESSAGE_ACCEPTED = "Message accepted"
FIRST_STATE_DELAY = 0.05
"""Real seconds between the result of ``messaging.send`` and the first ``messaging.state``."""
MAX_MESSAGES = 1024
"""Messages remembered for :meth:`Messaging.status`; beyond it the oldest are forgotten."""
MAX_BODY = 64 * 1024
"""Characters in a body (a real SMS is far shorter; this only bounds memory)."""

_STATE_EVENT = MESSAGE.event_types[0]
_RECEIVE_EVENT = INBOUND_MESSAGE.event_types[0]
_RECEIVED = INBOUND_MESSAGE.states[0]
_QUEUED, _INITIATED, _SENT = (step[0] for step in MESSAGE.steps[:3])
_DELIVERED, _UNDELIVERED, _FAILED = MESSAGE.final
# the states after queued, each with the simulated seconds since the one before
_PATHS: dict[str, tuple[tuple[str, float], ...]] = {
    _DELIVERED: ((_INITIATED, 0.1), (_SENT, 0.5), (_DELIVERED, 1.5)),
    _UNDELIVERED: ((_INITIATED, 0.1), (_SENT, 0.5), (_UNDELIVERED, 3.0)),
    _FAILED: ((_INITIATED, 0.1), (_FAILED, 0.5)),
}
_REASONS = {_UNDELIVERED: "Unreachable destination", _FAILED: "Carrier rejected"}


class _Message:
    __slots__ = ("params", "reason", "session", "state")

    def __init__(self, params: dict[str, Any], session: Session | None) -> None:
        self.params = params
        """What every event about the message repeats."""
        self.session = session
        self.state = params["message_state"]
        self.reason: str | None = None


class Messaging:
    """The messages of one emulator, by message id (the most recent :data:`MAX_MESSAGES`)."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core
        self._messages: OrderedDict[str, _Message] = OrderedDict()

    # -- the app sends ---------------------------------------------------------------------------------------

    def send(self, req: Request) -> dict[str, Any]:
        """``messaging.send``: check the params, accept the message, walk it through its states."""
        core, params = self.core, req.params
        for name in ("context", "to_number", "from_number"):
            value = params.get(name)
            if not isinstance(value, str) or not value:
                return error(req.id, INVALID_PARAMS, f"Invalid params: {name} must be a non-empty string")
        body, media, tags = params.get("body"), params.get("media", []), params.get("tags", [])
        if body is not None and (not isinstance(body, str) or len(body) > MAX_BODY):
            return error(req.id, INVALID_PARAMS, f"Invalid params: body must be a string of at most {MAX_BODY}")
        if not _strings(media):
            return error(req.id, INVALID_PARAMS, "Invalid params: media must be a list of URL strings")
        if not _strings(tags):
            return error(req.id, INVALID_PARAMS, "Invalid params: tags must be a list of strings")
        if not body and not media:
            return error(req.id, INVALID_PARAMS, "Invalid params: body or media is required")
        message_id = str(uuid.uuid4())
        message = self._remember(
            _message_params(
                message_id, params["context"], "outbound", params["from_number"], params["to_number"], body, media, tags
            ),
            req.session,
            _QUEUED,
        )
        if core.mode != "scripted":
            fate = core.far_ends.for_number(params["to_number"]).message
            core.later(FIRST_STATE_DELAY, lambda: self._advance(message, _QUEUED, _PATHS[fate]), scaled=False)
        return result(req.id, {"code": "200", "message": MESSAGE_ACCEPTED, "message_id": message_id})

    def _advance(self, message: _Message, state: str, rest: tuple[tuple[str, float], ...]) -> None:
        """Send ``state``, then put the next state on the timers."""
        message.state = state
        params = {**message.params, "message_state": state}
        reason = _REASONS.get(state)
        if reason is not None:
            params["reason"] = message.reason = reason
        if message.session is not None:
            self._deliver(message.session, _STATE_EVENT, params)
        if rest:
            (following, gap), *after = rest
            self.core.later(gap, lambda: self._advance(message, following, tuple(after)))

    # -- far ends send --------------------------------------------------------------------------------------

    def start_inbound(
        self,
        *,
        context: str,
        from_number: str,
        to_number: str,
        body: str,
        media: list[str] | None = None,
        session_id: str | None = None,
    ) -> str:
        """A message from a far end: ``messaging.receive`` to ``session_id``'s session or to the next session on
        ``context`` (nobody, when no session receives on it); its message id. LookupError for an unknown
        ``session_id``."""
        if session_id is not None:
            target = self.core.session_by_id(session_id)
            if target is None:
                raise LookupError("no such session")
        else:
            target = self._next_receiver(context)
        message_id = str(uuid.uuid4())
        params = _message_params(message_id, context, "inbound", from_number, to_number, body, media or [], [])
        self._remember(params, target, _RECEIVED)
        if target is not None:
            self._deliver(target, _RECEIVE_EVENT, params)
        else:
            self.core.log(f"inbound message {message_id}: no session receives on {context[:64]!r}")
        return message_id

    def _next_receiver(self, context: str) -> Session | None:
        candidates = sorted(
            (s for s in self.core.sessions.values() if s.conn is not None and context in s.contexts),
            key=lambda s: s.index,
        )
        return self.core.in_turn("message", context, candidates)

    # -- what the control plane reads ------------------------------------------------------------------------

    def status(self, message_id: str) -> dict[str, Any] | None:
        """What became of a message, or None for an unknown (or forgotten) id."""
        message = self._messages.get(message_id)
        return None if message is None else _status(message)

    def messages(self) -> list[dict[str, Any]]:
        """Every message remembered, most recent last."""
        return [_status(m) for m in self._messages.values()]

    # -- helpers -----------------------------------------------------------------------------------------------

    def _remember(self, params: dict[str, Any], session: Session | None, state: str) -> _Message:
        message = _Message(params, session)
        message.state = state
        self._messages[params["message_id"]] = message
        if len(self._messages) > MAX_MESSAGES:
            self._messages.popitem(last=False)
        return message

    def _deliver(self, session: Session, event_type: str, params: dict[str, Any]) -> None:
        core = self.core
        payload = {
            "event_type": event_type,
            "timestamp": core.wall(),
            "space_id": core.space_id,
            "context": params["context"],
            "params": params,
        }
        core.deliver(session, payload)


def _message_params(
    message_id: str,
    context: str,
    direction: str,
    from_number: str,
    to_number: str,
    body: str | None,
    media: list[str],
    tags: list[str],
) -> dict[str, Any]:
    text = body or ""
    return {
        "message_id": message_id,
        "context": context,
        "direction": direction,
        "tags": list(tags),
        "from_number": from_number,
        "to_number": to_number,
        "body": text,
        "media": list(media),
        "segments": 1 + len(text) // 161,
        "message_state": _RECEIVED if direction == "inbound" else _QUEUED,
    }


def _status(message: _Message) -> dict[str, Any]:
    p = message.params
    return {
        "message_id": p["message_id"],
        "direction": p["direction"],
        "from_number": p["from_number"],
        "to_number": p["to_number"],
        "context": p["context"],
        "body": p["body"],
        "state": message.state,
        "reason": message.reason,
        "session_id": message.session.sessionid if message.session is not None else None,
    }


def _strings(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 100 and all(isinstance(v, str) and v for v in value)


def _send(core: EmulatorCore, req: Request) -> dict[str, Any] | None:
    return core.messages.send(req)


MESSAGE_METHODS: Mapping[str, Handler] = MappingProxyType({"messaging.send": _send})
