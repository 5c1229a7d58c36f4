"""The filter stage shared by `relay tail` and `relay replay`.

Filters look at the decoded event payload dict (the `params` of a `signalwire.event` frame), never at typed
events: every event of a live session or a recording passes through here, and most are dropped, so building a
typed object first would cost more than everything else in the pipeline. For the same reason the common case,
a `--type` filter, costs one dict lookup per event once an event type has been seen.

Payloads come from the network or from files, so nothing here trusts their shape: a payload or `params` that
is not an object is treated as having no paths and no call ids, and no filter ever raises on an event.
Bad option values raise `FilterError` once, when the filter is built.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "CACHE_SIZE",
    "Condition",
    "EventFilter",
    "FilterError",
    "Op",
    "call_ids",
    "parse_where",
]

Op = Literal["=", "!=", "~"]

CACHE_SIZE: Final = 4096
"""How many event types keep a cached verdict; a stream of made-up types cannot grow memory past this."""

_OPERATOR = re.compile(r"!=|=|~")
_MISSING: Final = object()
# A list index written as more digits than this cannot address any list that fits in memory.
_MAX_INDEX_DIGITS = 18


class FilterError(ValueError):
    """A filter option value that cannot work; the message is one line naming the option and the value."""


def _quote(text: str) -> str:
    """Quote an option value the way a user would type it, keeping the message on one line."""
    if "'" in text or not text.isprintable():
        return repr(text)
    return f"'{text}'"


def call_ids(payload: dict[str, Any]) -> tuple[str, ...]:
    """The call ids an event belongs to, most specific first.

    `params.call_id` is the call itself; `params.call.call_id` is where dial events name the call they made,
    and `params.peer.call_id` is the other leg of a connect (or the parent of a connect-made leg). Following
    the last two is what makes `--call-id` show a call's whole story rather than only its own legs' events.
    Only non-empty strings count, each once.
    """
    params = payload.get("params") if isinstance(payload, dict) else None
    if not isinstance(params, dict):
        return ()
    found: list[str] = []
    own = params.get("call_id")
    if isinstance(own, str) and own:
        found.append(own)
    for key in ("call", "peer"):
        linked = params.get(key)
        if isinstance(linked, dict):
            other = linked.get("call_id")
            if isinstance(other, str) and other and other not in found:
                found.append(other)
    return tuple(found)


def _text(value: Any) -> str | None:
    """The text a `--where` value is compared with: what the user sees in the JSON, minus string quotes.

    None means the value has no JSON spelling (only possible for payloads not decoded from JSON).
    """
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One `--where PATH OP VALUE`: a test on the value found by walking PATH down from the payload's top.

    `=` needs the path present with equal text, `!=` holds when the path is absent or the text differs, and
    `~` needs the path present and the regex to match somewhere in the text (re.search).
    """

    path: tuple[str, ...]
    op: Op
    value: str
    pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _steps: tuple[tuple[str, int | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expr = ".".join(self.path) + self.op + self.value
        if self.path in ((), ("",)):
            raise FilterError(f"--where {_quote(expr)}: empty path before {_quote(self.op)}")
        if "" in self.path:
            raise FilterError(
                f"--where {_quote(expr)}: empty segment in path {_quote('.'.join(self.path))}"
                " (write PATH as names and list indexes joined by single dots, e.g. params.media.0)"
            )
        if self.op not in ("=", "!=", "~"):
            raise FilterError(f"--where {_quote(expr)}: expected PATH=VALUE, PATH!=VALUE or PATH~REGEX")
        if self.op == "~" and self.pattern is None:
            try:
                compiled = re.compile(self.value)
            except (re.error, OverflowError, RecursionError) as exc:
                raise FilterError(
                    f"--where {_quote(expr)}: invalid regular expression {_quote(self.value)}: {exc}"
                ) from None
            object.__setattr__(self, "pattern", compiled)
        steps = tuple(
            (seg, int(seg) if seg.isascii() and seg.isdigit() and len(seg) <= _MAX_INDEX_DIGITS else None)
            for seg in self.path
        )
        object.__setattr__(self, "_steps", steps)

    def __call__(self, payload: dict[str, Any]) -> bool:
        current: Any = payload
        for key, index in self._steps:
            if isinstance(current, dict):
                current = current.get(key, _MISSING)
            elif isinstance(current, list) and index is not None and index < len(current):
                current = current[index]
            else:
                return self.op == "!="
            if current is _MISSING:
                return self.op == "!="
        text = _text(current)
        if self.op == "=":
            return text == self.value
        if self.op == "!=":
            return text != self.value
        return text is not None and self.pattern is not None and self.pattern.search(text) is not None


def parse_where(expr: str) -> Condition:
    """Parse one `--where` expression.

    The operator is the first `!=`, `=` or `~` in the text, so values (and regexes) may contain `=` and `~`
    freely; only a path containing one of them cannot be written, and RELAY has no such keys.
    """
    found = _OPERATOR.search(expr)
    if found is None:
        raise FilterError(f"--where {_quote(expr)}: expected PATH=VALUE, PATH!=VALUE or PATH~REGEX")
    op: Op = "!=" if found.group() == "!=" else "=" if found.group() == "=" else "~"
    path = tuple(expr[: found.start()].split("."))
    return Condition(path, op, expr[found.end() :])


def _keep(payload: dict[str, Any]) -> bool:
    """The predicate of a filter with no options."""
    return True


def _globs(option: str, values: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching what any of the globs matches (as fnmatchcase would), or None for no globs."""
    if isinstance(values, str):
        values = (values,)
    for glob in values:
        if not glob.strip():
            raise FilterError(
                f"{option} {_quote(glob)}: empty pattern; give an event type or a glob such as 'calling.call.*'"
            )
    if not values:
        return None
    return re.compile("|".join(fnmatch.translate(glob) for glob in values))


class EventFilter:
    """Decides, per payload, whether an event is shown: all given filters must let it through.

    `types` are globs on `event_type` (any may match; none given lets every type through), `exclude` globs
    drop an event even when a `types` glob matched it, `call_id` keeps events of calls whose id starts with it
    (see `call_ids`), and every `where` expression must hold. When the `call_id` prefix turns out to match two
    different calls, `on_ambiguous(prefix, [first_id, second_id])` is called once, and both keep matching:
    the user asked for a prefix, and silently dropping either call would hide events.

    A bare string given for `types`, `exclude` or `where` counts as one value, not as a list of characters.

    `active` is False when no filter was given, so callers can skip calling the filter entirely.
    `predicate` is the same test as calling the filter, as a plain function specialised to the options given:
    calling an instance goes through `__call__`, which CPython 3.11 makes about twice as slow as calling a
    plain function, and with only `--type`/`--exclude` that call overhead is most of the cost.
    """

    __slots__ = (
        "_ambiguity_reported",
        "_call_prefix",
        "_conditions",
        "_exclude",
        "_first_match",
        "_include",
        "_more",
        "_on_ambiguous",
        "_tests",
        "_verdicts",
        "active",
        "predicate",
    )

    def __init__(
        self,
        *,
        types: Sequence[str] = (),
        exclude: Sequence[str] = (),
        call_id: str | None = None,
        where: Sequence[str] = (),
        on_ambiguous: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        self._include = _globs("--type", types)
        self._exclude = _globs("--exclude", exclude)
        self._verdicts: dict[str, bool] = {}
        if call_id is not None and not call_id.strip():
            raise FilterError(f"--call-id {_quote(call_id)}: empty call id; give a call id or its first few characters")
        self._call_prefix = call_id
        self._first_match: str | None = None
        self._ambiguity_reported = False
        self._on_ambiguous = on_ambiguous
        if isinstance(where, str):
            where = (where,)
        self._conditions = tuple(parse_where(expr) for expr in where)
        self._tests = tuple(condition.__call__ for condition in self._conditions)
        self._more = call_id is not None or bool(self._conditions)
        by_type = self._include is not None or self._exclude is not None
        self.active: bool = by_type or self._more
        self.predicate: Callable[[dict[str, Any]], bool] = self._specialise()

    def __call__(self, payload: dict[str, Any]) -> bool:
        try:
            verdict = self._verdicts[payload["event_type"]]
        except (KeyError, TypeError):
            verdict = self._type_verdict(payload)
        if verdict and self._more:
            return self._holds(payload)
        return verdict

    def _specialise(self) -> Callable[[dict[str, Any]], bool]:
        if not self.active:
            return _keep
        if self._more:
            return self.__call__
        verdicts = self._verdicts
        judge = self._type_verdict

        def by_event_type(payload: dict[str, Any]) -> bool:
            try:
                return verdicts[payload["event_type"]]
            except (KeyError, TypeError):
                return judge(payload)

        return by_event_type

    def _holds(self, payload: dict[str, Any]) -> bool:
        """The call-id and `--where` part of the test, for events whose type already passed."""
        if self._call_prefix is not None and not self._matches_call(payload, self._call_prefix):
            return False
        for test in self._tests:  # noqa: SIM110 - all() over a generator costs more than the tests
            if not test(payload):
                return False
        return True

    def _type_verdict(self, payload: Any) -> bool:
        """Judge an event type not seen before (or not a string), and remember the verdict for strings."""
        event_type = payload.get("event_type") if isinstance(payload, dict) else None
        if not isinstance(event_type, str):
            event_type = ""
        verdict = (self._include is None or self._include.match(event_type) is not None) and (
            self._exclude is None or self._exclude.match(event_type) is None
        )
        if len(self._verdicts) >= CACHE_SIZE:
            self._verdicts.clear()
        self._verdicts[event_type] = verdict
        return verdict

    def _matches_call(self, payload: dict[str, Any], prefix: str) -> bool:
        """`call_ids(payload)` has an id starting with `prefix`; inlined, as most events of a session fail it."""
        params = payload.get("params") if isinstance(payload, dict) else None
        if not isinstance(params, dict):
            return False
        matched = False
        cid = params.get("call_id")
        if isinstance(cid, str) and cid.startswith(prefix):
            matched = True
            if not self._ambiguity_reported:
                self._note_match(prefix, cid)
        for key in ("call", "peer"):
            linked = params.get(key)
            if isinstance(linked, dict):
                cid = linked.get("call_id")
                if isinstance(cid, str) and cid.startswith(prefix):
                    matched = True
                    if not self._ambiguity_reported:
                        self._note_match(prefix, cid)
        return matched

    def _note_match(self, prefix: str, cid: str) -> None:
        if self._first_match is None:
            self._first_match = cid
        elif cid != self._first_match:
            self._ambiguity_reported = True
            if self._on_ambiguous is not None:
                self._on_ambiguous(prefix, [self._first_match, cid])
