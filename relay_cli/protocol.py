"""The RELAY JSON-RPC protocol without I/O: building frames, telling them apart, hiding secrets.

Both ends of the wire use this module, the client session and the emulator, so the two can only
disagree about the protocol in one place. Nothing here touches a socket or the clock of the event loop.
"""

from __future__ import annotations

import enum
import os
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from relay_cli import __version__

__all__ = [
    "ACK_HEAD",
    "ACK_TAIL",
    "AGENT",
    "APP_TO_RELAY",
    "AUTH_FAILED",
    "BAD_AUTH_STATE",
    "CALL_GONE",
    "CALL_NOT_FOUND",
    "CALL_PASS",
    "FRAME_EXCERPT",
    "FRAME_KEY",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MAX_CONTAINERS",
    "MAX_FRAME",
    "METHOD_NOT_FOUND",
    "MIN_SECRET_LENGTH",
    "PROTOCOL_EVENT_TYPES",
    "RECEIVE",
    "REDACTED",
    "RELAY_TO_APP",
    "SECRET_KEYS",
    "UNRECEIVE",
    "VERSION",
    "ConnectionNumbers",
    "FrameError",
    "FrameExcerpt",
    "FrameRecord",
    "Kind",
    "RecordedClose",
    "RecordedFrame",
    "Secrets",
    "ack",
    "call_control_result",
    "classify",
    "connect_params",
    "describe",
    "display_url",
    "error",
    "event_frame",
    "excerpt",
    "frame_record_head",
    "frame_record_tail",
    "is_success",
    "make_protocol",
    "may_hold_secret",
    "new_id",
    "redact",
    "redact_text",
    "request",
    "result",
    "too_many_containers",
    "without_secrets",
]

JSONRPC = "2.0"
VERSION: dict[str, int] = {"major": 2, "minor": 0, "revision": 0}
AGENT = f"relay-cli/{__version__}"

AUTH_FAILED = -32002
BAD_AUTH_STATE = -32003
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603

MAX_FRAME = 10 * 2**20
"""The largest frame either end accepts, and the longest line relay reads from a recording."""
ACK_HEAD = b'{"jsonrpc":"2.0","id":'
ACK_TAIL = b',"result":{}}'
"""An event's ACK is ``ACK_HEAD + orjson.dumps(id) + ACK_TAIL``: the same bytes as ``ack(id)``, built on the hot
path without a dict."""
MAX_CONTAINERS = 100_000
"""More arrays and objects than a RELAY frame ever holds: decoded, a 10 MiB frame of ``[]`` takes 300 MB."""
PROTOCOL_EVENT_TYPES = frozenset({"signalwire.authorization.state"})
"""Event types RELAY itself defines, beyond the SDK's typed calling and messaging events."""

RECEIVE = "signalwire.receive"
UNRECEIVE = "signalwire.unreceive"
"""Client requests that add or remove contexts; the other ``signalwire.*`` methods are :class:`Kind` values."""
CALL_PASS = "calling.pass"  # noqa: S105 (a method name, not a password)
"""Decline control of an offered inbound call, returning it to routing: it may go to another client."""
CALL_NOT_FOUND = "404"
"""A call-control result code (a string, as RELAY sends): no such call."""
CALL_GONE = "410"
"""A call-control result code: the call has ended."""

SECRET_KEYS = frozenset({"token", "jwt_token", "authorization_state", "authentication"})
REDACTED = "[redacted]"


class FrameError(ValueError):
    """A message that is not a JSON-RPC 2.0 object."""


class Kind(enum.Enum):
    """What a JSON-RPC frame is, from the point of view of either end."""

    EVENT = "signalwire.event"
    PING = "signalwire.ping"
    DISCONNECT = "signalwire.disconnect"
    CONNECT = "signalwire.connect"
    REQUEST = "request"
    RESULT = "result"
    ERROR = "error"


_METHOD_KINDS = {k.value: k for k in (Kind.EVENT, Kind.PING, Kind.DISCONNECT, Kind.CONNECT)}

FRAME_KEY = "_relay"
"""The key a two-way recording adds to each frame: ``{"dir": ..., "t": ..., "conn": ...}``, where and when it
crossed the wire."""
APP_TO_RELAY = "app>relay"
"""A frame's direction: from the app (the client) to RELAY (the server)."""
RELAY_TO_APP = "relay>app"
"""A frame's direction: from RELAY to the app."""
FRAME_EXCERPT = 64 * 2**10
"""How much of a frame over :data:`MAX_FRAME` a two-way recording keeps: its first 64 KiB, as redacted text."""

RecordedFrame = tuple[str, float, int, bytes, bool]
"""A recorded frame: ``(direction, at, connection, raw, text)``, what a two-way recording was given of it."""


@dataclass(frozen=True, slots=True)
class RecordedClose:
    """A two-way recording's line for a connection that ended, ``{"_relay": {"t": T, "conn": N, "closed": CODE,
    "reason": R, "detail": D}}``: a replay then knows the end the live proxy saw (an event un-ACKed when its
    connection closed is "no ACK, closed", not "awaited at exit"). No frame crossed: the line has no ``dir``."""

    at: float
    connection: int
    code: int | None
    """The close code that passed through; None for a drop (no close frame)."""
    reason: str = ""
    """The close frame's reason, redacted."""
    detail: str = ""
    """Who ended it: "by the app", "dropped by RELAY", "by the proxy", ..."""


class FrameExcerpt(bytes):
    """The ``raw`` of a recorded frame that was over :data:`MAX_FRAME`: only its first :data:`FRAME_EXCERPT`
    bytes were kept. Still bytes, so a :data:`RecordedFrame` keeps its shape; ``size`` is the frame's own."""

    size: int

    def __new__(cls, data: bytes, size: int) -> FrameExcerpt:
        excerpt = super().__new__(cls, data)
        excerpt.size = size
        return excerpt


_RECORD_HEADS: Final = {d: orjson.dumps({"dir": d})[:-1] + b',"t":' for d in (APP_TO_RELAY, RELAY_TO_APP)}


def frame_record_head(direction: str) -> bytes:
    """The start of a frame record, ``{"dir":D,"t":``: the time, then :func:`frame_record_tail`, follow."""
    head = _RECORD_HEADS.get(direction)
    return head if head is not None else orjson.dumps({"dir": direction})[:-1] + b',"t":'


def frame_record_tail(connection: int) -> bytes:
    """What follows a frame record's time: ``,"conn":N``."""
    return b',"conn":%d' % connection


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame as it crossed the wire, for journals and proxies: both its bytes and what they decode to.

    ``kind`` is None for a frame that is not JSON-RPC, ``value`` too when it is not even JSON: both are still
    recorded, as sent.
    """

    direction: str
    """:data:`APP_TO_RELAY` or :data:`RELAY_TO_APP`."""
    time: float
    """Wall-clock seconds when the frame was sent or received."""
    connection: str
    """Which connection carried it (an id the recorder chose)."""
    kind: Kind | None
    value: Any
    raw: bytes


class ConnectionNumbers:
    """Connection ids numbered 1, 2, 3... in order of first appearance: what output and two-way recordings call
    a connection (``#2``, ``"conn": 2``), the same number in both for one run.

    At most ``limit`` ids are remembered: a forgotten one that speaks again gets a new number.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.count = 0
        """Numbers given so far."""
        self._numbers: OrderedDict[str, int] = OrderedDict()

    def __call__(self, connection: str) -> int:
        number = self._numbers.get(connection)
        if number is None:
            self.count += 1
            number = self._numbers[connection] = self.count
            if len(self._numbers) > self.limit:
                self._numbers.popitem(last=False)
        return number

    def known(self, connection: str) -> int | None:
        """The number ``connection`` was given, or None for one never numbered (none is given here)."""
        return self._numbers.get(connection)


def classify(frame: Any) -> Kind:
    """Say what a decoded frame is; raise :class:`FrameError` when it is not JSON-RPC at all."""
    if not isinstance(frame, dict):
        raise FrameError("not a JSON object")
    method = frame.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise FrameError("method is not a string")
        return _METHOD_KINDS.get(method, Kind.REQUEST)
    if "error" in frame:
        return Kind.ERROR
    if "result" in frame:
        return Kind.RESULT
    raise FrameError("neither a request nor a response (no method, result or error)")


def new_id() -> str:
    """A request id, a UUID string as every SDK sends."""
    return str(uuid.uuid4())


def request(method: str, params: Mapping[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": id or new_id(), "method": method, "params": dict(params)}


def result(id: Any, value: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": id, "result": dict(value or {})}


def ack(id: Any) -> dict[str, Any]:
    """The reply to a ``signalwire.event``; also the reply to ``signalwire.disconnect``."""
    return {"jsonrpc": JSONRPC, "id": id, "result": {}}


def error(id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": JSONRPC, "id": id, "error": body}


def event_frame(payload: Mapping[str, Any], id: str | None = None) -> dict[str, Any]:
    return request(Kind.EVENT.value, payload, id)


def connect_params(
    *,
    project: str | None = None,
    token: str | None = None,
    jwt: str | None = None,
    contexts: Iterable[str] = (),
    protocol: str | None = None,
    authorization_state: str | None = None,
    agent: str = AGENT,
) -> dict[str, Any]:
    """The params of ``signalwire.connect``; a JWT wins over project and token when both are given."""
    if jwt:
        authentication: dict[str, str] = {"jwt_token": jwt}
    elif project and token:
        authentication = {"project": project, "token": token}
    else:
        raise ValueError("signalwire.connect needs a project and token, or a JWT")
    params: dict[str, Any] = {
        "version": dict(VERSION),
        "agent": agent,
        "event_acks": True,
        "authentication": authentication,
    }
    contexts = list(contexts)
    if contexts:
        params["contexts"] = contexts
    if protocol:
        params["protocol"] = protocol
    if authorization_state:
        params["authorization_state"] = authorization_state
    return params


def too_many_containers(raw: bytes) -> bool:
    """Whether encoded JSON would take far more memory decoded than its size: only big frames are counted."""
    return len(raw) > 2**20 and raw.count(b"[") + raw.count(b"{") > MAX_CONTAINERS


def call_control_result(value: dict[str, Any]) -> dict[str, Any]:
    """The part of a result value that says how a call-control request went: the value itself, or the ``result``
    object call control nests in it (``{"result": {"code": "200", ...}}``) when the value has no ``code``."""
    inner = value.get("result")
    return inner if inner.__class__ is dict and "code" not in value else value


def is_success(value: Any) -> bool:
    """A call-control result succeeded: no ``code``, or a ``2xx`` code (sent as a string)."""
    if not isinstance(value, dict) or "code" not in value:
        return True
    return str(value["code"]).startswith("2")


def make_protocol(project_id: str) -> str:
    """A session id in the real format: ``signalwire_<64 hex>_<uuid>_<project uuid>``."""
    return f"signalwire_{os.urandom(32).hex()}_{uuid.uuid4()}_{project_id}"


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret replaced, at any depth; other values are shared, not copied."""
    if isinstance(value, dict):
        if not _has_secret(value):
            return value
        return {k: REDACTED if k in SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        if not any(isinstance(v, (dict, list)) and _has_secret(v) for v in value):
            return value
        return [redact(v) for v in value]
    return value


def may_hold_secret(raw: bytes) -> bool:
    """Whether encoded JSON could hold a secret key: a substring test that rules out almost every event.

    Two searches cover the four keys ("token" is in "jwt_token", "auth" in the other two): each costs
    about a nanosecond a byte, and a live tail makes them for every event it prints. A key may also be spelled
    with an escape (``"\\u0074oken"``): a ``\\u`` is searched for only where a backslash is, a search five
    times faster, so an event without one pays 0.2 ns a byte for it.
    """
    return b"token" in raw or b"auth" in raw or (b"\\" in raw and b"\\u" in raw)


def without_secrets(value: dict[str, Any], raw: bytes | None) -> tuple[dict[str, Any], bytes | None]:
    """The value and its encoded bytes, redacted when they may hold a secret; the bytes kept when they cannot.

    A byte search rules out almost every event cheaply, so the hot path rarely walks the value. Bytes it does not
    rule out are never kept, even when the value holds no secret: with a key given twice, the value keeps only
    the last copy while the bytes still hold the first.
    """
    if raw is not None and not may_hold_secret(raw):
        return value, raw
    return redact(value), None


def _has_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in SECRET_KEYS or _has_secret(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_secret(v) for v in value)
    return False


def describe(frame: Any) -> str:
    """One line saying what a JSON-RPC frame is, for frames that are not events; secrets never shown."""
    kind = classify(frame)
    if kind is Kind.ERROR:
        err = frame.get("error")
        if isinstance(err, dict):
            return f"JSON-RPC error {err.get('code', '?')}: {err.get('message', '')}".rstrip(": ")
        return "JSON-RPC error"
    if kind is Kind.RESULT:
        value = frame.get("result")
        if isinstance(value, dict):
            if "protocol" in value:
                restored = " (session restored)" if value.get("session_restored") else ""
                return f"signalwire.connect result{restored}"
            if "result" in value and isinstance(value["result"], dict):
                value = value["result"]
            if "code" in value:
                outcome = "success" if is_success(value) else "failure"
                message = value.get("message", "")
                return f"call-control result {value['code']} ({outcome}): {message}".rstrip(": ")
            if not value:
                return "empty result (an ACK or a reply to a ping or disconnect)"
        return "JSON-RPC result"
    method = frame["method"]
    if kind is Kind.CONNECT:
        params = frame.get("params")
        resume = isinstance(params, dict) and bool(params.get("protocol"))
        return "signalwire.connect request" + (" (resuming a session)" if resume else "")
    if kind is Kind.DISCONNECT:
        params = frame.get("params")
        restart = isinstance(params, dict) and params.get("restart") is True
        return "signalwire.disconnect request" + (" (restart)" if restart else "")
    return f"{method} request"


MIN_SECRET_LENGTH = 8
"""Shorter values are not redacted by value: a real API token is 50 characters, a JWT or an
``authorization_state`` hundreds, so 8 is far below any of them; a shorter one is a test token (``t``,
``demo``), and replacing it everywhere would mangle ordinary words ("Au[redacted]hen…" for ``t``)."""

_LEARNED_SECRETS = 8
_CUT_PREFIX = 4
_SECRET_VALUE = re.compile(r'"(' + "|".join(sorted(map(re.escape, SECRET_KEYS))) + r')"(\s*:\s*)"(?:[^"\\]|\\.)*"?')
_ESCAPED_KEY_VALUE = re.compile(r'"((?:[^"\\]|\\.){1,120})"(\s*:\s*)"(?:[^"\\]|\\.)*"?')
"""A string value after a key of at most 120 characters: a secret key spelled with escapes, every character
``\\uXXXX``, is 114."""
_URL_PARTS = re.compile(r"""(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s/?#@"'<>\\]*@)?([^\s?#"'<>\\]*)(?:[?#][^\s"'<>\\]*)?""")


def display_url(url: str) -> str:
    """A URL fit to print: without ``user:password@`` and without its query string or fragment."""
    return _URL_PARTS.sub(r"\1\2", url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text fit to print: secret values, the values of secret JSON keys and URL credentials replaced.

    ``secrets`` are replaced wherever they occur, longest first; any shorter than
    :data:`MIN_SECRET_LENGTH` are ignored. Key redaction works on excerpts too, a value cut off included.
    """
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    if '"' in text:
        text = _SECRET_VALUE.sub(rf'"\1"\2"{REDACTED}"', text)
        if "\\u" in text:
            text = _ESCAPED_KEY_VALUE.sub(_escaped_secret, text)
    if "://" in text:
        text = display_url(text)
    return text


def _escaped_secret(match: re.Match[str]) -> str:
    """A key's value replaced when the key, its escapes decoded, is a secret one."""
    key = match[1]
    if "\\" in key:
        try:
            if orjson.loads(f'"{key}"') in SECRET_KEYS:
                return f'"{key}"{match[2]}"{REDACTED}"'
        except orjson.JSONDecodeError:
            pass
    return match[0]


def excerpt(data: bytes, limit: int = 200, secrets: Iterable[str] = ()) -> str:
    """The first ``limit`` bytes of a frame as redacted text, saying how long the frame was when cut.

    A secret the cut falls inside leaves a prefix that matches no whole secret: a prefix of 4 characters
    or more is redacted too (shorter ones give little away, and would often match by chance).
    """
    secrets = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]
    text = data[:limit].decode("utf-8", "replace")
    if len(data) > limit:
        for secret in secrets:
            for size in range(min(len(secret), len(text)), _CUT_PREFIX - 1, -1):
                if text.endswith(secret[:size]):
                    text = text[:-size] + REDACTED
                    break
    text = redact_text(text, secrets)
    return text + (f" … ({len(data)} bytes)" if len(data) > limit else "")


class Secrets:
    """The values never to print: the credentials, and each ``authorization_state`` learned at run time.

    One object per process, shared by whatever prints (the terminal) and whatever learns new secrets (the
    session, through :meth:`add`). The learned values are bounded: a server sending a new state on every
    event must not grow memory, and only the recent ones can still be sent back to it.
    """

    def __init__(self, *values: str | None) -> None:
        self._fixed = [v for v in values if v and len(v) >= MIN_SECRET_LENGTH]
        self._learned: deque[str] = deque(maxlen=_LEARNED_SECRETS)

    def add(self, value: str | None) -> None:
        """Never print ``value`` from now on (too short a value is ignored, see :data:`MIN_SECRET_LENGTH`)."""
        if value and len(value) >= MIN_SECRET_LENGTH and value not in self._learned and value not in self._fixed:
            self._learned.append(value)

    @property
    def values(self) -> list[str]:
        return [*self._fixed, *self._learned]

    def scrub(self, text: str) -> str:
        """``text`` fit to print: see :func:`redact_text`."""
        return redact_text(text, self.values)

    def excerpt(self, data: bytes, limit: int = 200) -> str:
        """The start of a frame fit to print: see :func:`excerpt`."""
        return excerpt(data, limit, self.values)
