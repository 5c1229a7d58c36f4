"""The filter stage shared by `relay tail` and `relay replay`.

Filters look at the decoded event payload dict (the `params` of a `signalwire.event` frame), never at typed
events: every event of a live session or a recording passes through here, and most are dropped, so building a
typed object first would cost more than everything else in the pipeline. For the same reason the common case,
a `--type` filter, costs one dict lookup per event once an event type has been seen.

Payloads come from the network or from files, so nothing here trusts their shape: a payload or `params` that
is not an object is treated as having no paths and no call ids, and no filter ever raises on an event, with
one deliberate exception: a `--call-id` prefix that turns out to match two ids stops the stream
(`AmbiguousCallId`), as guessing which one was meant would show the wrong events.
Bad option values raise `FilterError` once, when the filter is built; values that can work but probably do
not mean what the user wants (a type no event has) are listed in `EventFilter.warnings`.
"""

from __future__ import annotations

import array
import fnmatch
import functools
import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from relay_cli.errors import UsageError
from relay_cli.event import EVENT_CLASS_MAP
from relay_cli.protocol import APP_TO_RELAY, PROTOCOL_EVENT_TYPES, RELAY_TO_APP, Kind

__all__ = [
    "CACHE_SIZE",
    "KNOWN_EVENT_TYPES",
    "PAYLOAD_KEYS",
    "REGEX_TEXT_LIMIT",
    "AmbiguousCallId",
    "Condition",
    "EventFilter",
    "FilterError",
    "FrameFilter",
    "Op",
    "call_ids",
    "parse_where",
]

Op = Literal["=", "!=", "~"]

CACHE_SIZE: Final = 4096
"""How many event types keep a cached verdict; a stream of made-up types cannot grow memory past this."""

KNOWN_EVENT_TYPES: Final = frozenset(EVENT_CLASS_MAP) | PROTOCOL_EVENT_TYPES
"""The event types RELAY sends: a `--type` glob matching none of them is probably a typo."""

PAYLOAD_KEYS: Final = ("event_type", "event_channel", "timestamp", "project_id", "space_id", "context", "params")
"""The top-level keys of an event payload (PROTOCOL.md section 5); a `--where` path starts with one of them."""

REGEX_TEXT_LIMIT: Final = 2048
"""`~` searches only this many leading characters of a value: with `_REGEX_BUDGET`, this bounds each search."""

# An upper bound on the backtracking steps one search may take (see `_regex_cost`): one open-ended repetition
# over a 4096-character text fits, two in a row do not. Measured worst cases at the bound: about 10 ms.
_REGEX_BUDGET: Final = 2 * 10**7

# `==` is the comparison of jq, JavaScript and Python: taken as `=` (see `parse_where`).
_OPERATOR = re.compile(r"!=|==?|~")
_MISSING: Final = object()
# A list index written as more digits than this cannot address any list that fits in memory.
_MAX_INDEX_DIGITS = 18
# Ids quoted in a message are cut to this: an id is as long as the server made it.
_MAX_QUOTED_ID = 64


class FilterError(UsageError, ValueError):
    """A filter option value that cannot work; the message is one line naming the option and the value."""


class AmbiguousCallId(FilterError):
    """A `--call-id` prefix matched two different ids; raised by the filter at the event that showed it."""

    def __init__(self, prefix: str, ids: list[str]) -> None:
        self.prefix = prefix
        self.ids = ids
        shown = ", ".join(_cut(i) for i in ids)
        super().__init__(f"--call-id {_quote(prefix)} is ambiguous: it matches {shown}; give more characters")


def _quote(text: str) -> str:
    """Quote an option value the way a user would type it, keeping the message on one line."""
    if "'" in text or not text.isprintable():
        return repr(text)
    return f"'{text}'"


def _cut(ident: str) -> str:
    return ident if len(ident) <= _MAX_QUOTED_ID else ident[:_MAX_QUOTED_ID] + "…"


def call_ids(payload: dict[str, Any]) -> tuple[str, ...]:
    """The ids `--call-id` matches on an event, most specific first.

    `params.call_id` is the call itself; `params.call.call_id` is where dial events name the call they made,
    and `params.peer.call_id` is the other leg of a connect (or the parent of a connect-made leg). Following
    the last two is what makes `--call-id` show a call's whole story rather than only its own legs' events.
    `params.message_id` is what pretty output shows in the call column of a message event.
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
    message = params.get("message_id")
    if isinstance(message, str) and message and message not in found:
        found.append(message)
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


# --- bounding a regex ------------------------------------------------------------------------------------
# Python's re backtracks and has no timeout: `(a+)+$` takes 22 s on 28 characters. Rather than a second regex
# engine (a compiled dependency, with another syntax), a pattern is read with the parser re itself uses and
# refused when its worst case is large: each search then does at most `_REGEX_BUDGET` steps (give or take a
# factor for the length of the pattern), whatever text the server sends. The bound is an upper one: a
# repetition adds a factor of its possible lengths, unless what follows it cannot start with a character
# it repeats (`\d+-`: only the longest run can go on), or nothing follows it at all.

_END: Final = "end"  # nothing follows: the match succeeds here
_EOL: Final = "eol"  # only an end anchor follows: at most two places where it holds


@functools.cache
def _sre() -> Any:
    """re's own parser (private; its public alias sre_parse warns on import since 3.11)."""
    return importlib.import_module("re._parser")


@functools.cache
def _every_character() -> str:
    return array.array("I", range(0x110000)).tobytes().decode("utf-32-le", "surrogatepass")


class _Unsafe(Exception):
    """The pattern repeats something that itself varies: its worst case is exponential."""


def _varies(items: Any) -> bool:
    """Whether a sub-pattern can match in more than one way: a repetition, alternatives or a back-reference."""
    sre = _sre()
    for op, av in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            if av[0] != av[1] or _varies(av[2]):
                return True
        elif op in (sre.BRANCH, sre.GROUPREF, sre.GROUPREF_EXISTS, sre.GROUPREF_IGNORE):
            return True
        elif op == sre.SUBPATTERN:
            if _varies(av[3]):
                return True
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            if _varies(av[1]):
                return True
        elif op == sre.ATOMIC_GROUP and _varies(av):
            return True
    return False


def _single(items: Any) -> Any:
    """The one character test a repeated body is (`a`, `[0-9]`, `.`, `(x)`), or None."""
    sre = _sre()
    while len(items) == 1:
        op, av = items[0]
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY):
            return items[0]
        if op != sre.SUBPATTERN or av[1] or av[2]:
            return None
        items = av[3]
    return None


def _overlap(a: Any, b: Any, state: Any) -> bool:
    """Whether some character passes both character tests, asked of re itself.

    With a literal on either side (the common `\\d+-`), that is one test of one character; otherwise every
    code point is tried, in one search of about 10 ms.
    """
    sre = _sre()
    compiler = importlib.import_module("re._compiler")
    if not state.flags & re.IGNORECASE:
        for one, other in ((a, b), (b, a)):
            if one[0] == sre.LITERAL:
                test = compiler.compile(sre.SubPattern(state, [other]), state.flags)
                return test.fullmatch(chr(one[1])) is not None
    both = sre.SubPattern(state, [(sre.ASSERT, (1, sre.SubPattern(state, [a]))), b])
    return compiler.compile(both, state.flags).search(_every_character()) is not None


def _steps(items: Any, follow: Any, after: int, state: Any, limit: int) -> tuple[int, Any]:
    """An upper bound on the steps of matching `items` then a rest that costs `after` and starts with `follow`.

    `follow` (and the second value returned, for what `items` start with) is a list of character tests one of
    which the next character must pass, `_END`, `_EOL`, or None when unknown. Worked from the end backwards: a
    repetition multiplies the cost of what follows it by its number of possible lengths, unless at most one
    of them can go on (see the note above); its own scan costs its length either way.
    """
    sre = _sre()
    multiline = bool(state.flags & re.MULTILINE)
    cost = after
    nxt = follow
    for op, av in reversed(items):
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY):
            cost, nxt = 1 + cost, [(op, av)]
        elif op == sre.AT:
            cost += 1
            if av in (sre.AT_END, sre.AT_END_STRING):
                nxt = None if multiline and av == sre.AT_END else _EOL
        elif op == sre.SUBPATTERN:
            plain = not av[1] and not av[2]
            cost, first = _steps(av[3], nxt if plain else None, cost, state, limit)
            nxt = first if plain else None
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, body = av
            single = _single(body)
            if high <= 1:
                cost += 1 + _steps(body, nxt, cost, state, limit)[0]
            elif _varies(body):
                raise _Unsafe
            else:
                scan = min(high, limit) * _steps(body, None, 0, state, limit)[0]
                one_way = op == sre.POSSESSIVE_REPEAT or low == high or nxt is _END
                if not one_way and single is not None and isinstance(nxt, list):
                    one_way = not any(_overlap(single, n, state) for n in nxt)
                if one_way:
                    cost += scan
                elif single is not None and nxt is _EOL:
                    cost = scan + 2 * cost
                else:
                    cost = scan + max(1, min(high, limit) - low + 1) * cost
            if low == 0 and nxt is _END:
                pass  # it may match nothing, and then the match ends: what comes before may end here too
            elif single is not None and low >= 1:
                nxt = [single]
            elif single is not None and isinstance(nxt, list):
                nxt = [single, *nxt]
            else:
                nxt = None
        elif op == sre.BRANCH:
            cost = sum(_steps(alt, nxt, cost, state, limit)[0] for alt in av[1])
            nxt = None
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            cost += _steps(av[1], _END, 0, state, limit)[0]
        elif op == sre.ATOMIC_GROUP:
            cost += _steps(av, _END, 0, state, limit)[0]
            nxt = None
        elif op == sre.GROUPREF_EXISTS:
            yes = _steps(av[1], nxt, cost, state, limit)[0]
            cost = yes + (_steps(av[2], nxt, cost, state, limit)[0] if av[2] else cost)
            nxt = None
        else:  # a back-reference compares up to the whole text
            cost += limit
            nxt = None
    return cost, nxt


def _period(text: list[int]) -> int:
    """The smallest shift that maps `text` onto itself: two places it occurs at are at least this far apart."""
    return next(p for p in range(1, len(text) + 1) if text[p:] == text[: len(text) - p])


def _regex_cost(pattern: str, limit: int = REGEX_TEXT_LIMIT) -> int:
    """An upper bound on the backtracking steps of one search of `pattern` in a text of `limit` characters.

    A search tries every start; one that begins with `^` (not multiline) only the first, and one that begins
    with a literal text goes past a start where that text is not in a few steps: only where it is (at most
    `limit / period` places) does the rest cost its full bound. Raises `_Unsafe` for a repetition of something
    that varies, whose cost grows exponentially.
    """
    sre = _sre()
    parsed = sre.parse(pattern)
    state = parsed.state
    data = list(parsed.data)
    if (
        data
        and data[0][0] == sre.AT
        and (
            data[0][1] == sre.AT_BEGINNING_STRING or (data[0][1] == sre.AT_BEGINNING and not state.flags & re.MULTILINE)
        )
    ):
        return _steps(data, _END, 0, state, limit)[0]
    prefix: list[int] = []
    if not state.flags & re.IGNORECASE:
        for op, av in data:
            if op != sre.LITERAL:
                break
            prefix.append(av)
    if len(prefix) < 2:
        return (limit + 1) * _steps(data, _END, 0, state, limit)[0]
    rest = _steps(data[len(prefix) :], _END, 0, state, limit)[0]
    return (limit + 1) * len(prefix) + (limit // _period(prefix) + 1) * rest


def _check_regex(expr: str, regex: str) -> None:
    """Refuse a regex whose worst case on one value is too slow to run on every event of a stream."""
    where = f"--where {_quote(expr)}: regex refused"
    try:
        cost = _regex_cost(regex)
    except _Unsafe:
        raise FilterError(
            f"{where}: it repeats a group that itself repeats or has alternatives (like (a+)+ or (a|ab)*),"
            " which can take minutes on one event; repeat a single character or class instead"
        ) from None
    except RecursionError:
        raise FilterError(f"{where}: nested too deeply") from None
    if cost > _REGEX_BUDGET:
        raise FilterError(
            f"{where}: its open-ended repetitions in a row (such as .*x.*) could take about 10^{len(str(cost)) - 1}"
            f" steps on one {REGEX_TEXT_LIMIT}-character value; anchor it with ^, bound them ({{1,20}}),"
            " or split it into several --where conditions"
        )


@dataclass(frozen=True, slots=True)
class Condition:
    """One `--where PATH OP VALUE`: a test on the value found by walking PATH down from the payload's top.

    `=` needs the path present with equal text, `!=` holds when the path is absent or the text differs, and
    `~` needs the path present and the regex to match somewhere in the first `REGEX_TEXT_LIMIT` characters
    of the text (re.search). A regex whose worst case is too slow for a stream is refused (see `_check_regex`).
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
            _check_regex(expr, self.value)
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
        # Slicing a text no longer than the limit returns it as it is: no copy in the common case.
        return (
            text is not None and self.pattern is not None and self.pattern.search(text[:REGEX_TEXT_LIMIT]) is not None
        )


def parse_where(expr: str) -> Condition:
    """Parse one `--where` expression.

    The operator is the first `!=`, `==`, `=` or `~` in the text, so values (and regexes) may contain `=` and `~`
    freely; only a path containing one of them cannot be written, and RELAY has no such keys. `==` means `=`:
    it is what jq, JavaScript and Python users type, and refusing it would only make them type it again (a
    value that starts with `=` is still reachable with `PATH~^=`).
    """
    found = _OPERATOR.search(expr)
    if found is None:
        raise FilterError(f"--where {_quote(expr)}: expected PATH=VALUE, PATH!=VALUE or PATH~REGEX")
    op: Op = "!=" if found.group() == "!=" else "~" if found.group() == "~" else "="
    path = tuple(expr[: found.start()].split("."))
    return Condition(path, op, expr[found.end() :])


def _keep(payload: dict[str, Any]) -> bool:
    """The predicate of a filter with no options."""
    return True


def _as_tuple(values: str | Sequence[str] | None) -> tuple[str, ...]:
    if values is None:
        return ()
    return (values,) if isinstance(values, str) else tuple(values)


def _globs(option: str, values: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching what any of the globs matches (as fnmatchcase would), or None for no globs."""
    for glob in values:
        if not glob.strip():
            raise FilterError(
                f"{option} {_quote(glob)}: empty pattern; give an event type or a glob such as 'calling.call.*'"
            )
    if not values:
        return None
    return re.compile("|".join(fnmatch.translate(glob) for glob in values))


def _nearest_type(glob: str) -> str:
    """The known type (or family glob) a glob that matches none was most likely meant to be."""
    bare = glob.strip("*?")
    ending = sorted(t for t in KNOWN_EVENT_TYPES if bare and t.endswith("." + bare))
    if len(ending) == 1:
        return ending[0]
    if ending:
        return f"*.{bare}"
    import difflib  # here: only a typo needs it

    return difflib.get_close_matches(glob, sorted(KNOWN_EVENT_TYPES), n=1, cutoff=0.0)[0]


def _type_warnings(option: str, globs: tuple[str, ...]) -> list[str]:
    warnings = []
    for glob in globs:
        matcher = re.compile(fnmatch.translate(glob))
        if not any(matcher.match(t) for t in KNOWN_EVENT_TYPES):
            warnings.append(
                f"{option} {_quote(glob)} matches no known event type (did you mean {_quote(_nearest_type(glob))}?)"
            )
    return warnings


def _where_warnings(expr: str, condition: Condition) -> list[str]:
    head = condition.path[0]
    if head in PAYLOAD_KEYS:
        return []
    return [
        f"--where {_quote(expr)}: an event has no top-level {_quote(head)} (it has {', '.join(PAYLOAD_KEYS)});"
        f" did you mean {_quote('params.' + expr)}?"
    ]


def _call_id_warnings(prefixes: tuple[str, ...]) -> list[str]:
    odd = [p for p in prefixes if p.strip("0123456789abcdefABCDEF-")]
    return [
        f"--call-id {_quote(p)}: RELAY call and message ids are UUIDs (hex digits and dashes), so this can match"
        " only ids of another shape"
        for p in odd
    ]


class EventFilter:
    """Decides, per payload, whether an event is shown: all given filters must let it through.

    `types` are globs on `event_type` (any may match; none given lets every type through), `exclude` globs
    drop an event even when a `types` glob matched it, `call_id` keeps events with an id (see `call_ids`)
    starting with any of the given prefixes, and every `where` expression must hold.

    A prefix must name one call or message: when a second id starting with it appears, the filter calls
    `on_ambiguous(prefix, [first_id, second_id])` (which may raise an exception of its own) and then raises
    `AmbiguousCallId`. In a stream that is as soon as the second id shows up; showing both would mix two calls'
    events, and there is no later moment at which a live stream could say so.

    A bare string given for `types`, `exclude`, `call_id` or `where` counts as one value, not as a list of
    characters. `warnings` are one-line messages about values that can work but match nothing RELAY sends.

    `active` is False when no filter was given, so callers can skip calling the filter entirely.
    `predicate` is the same test as calling the filter, as a plain function specialised to the options given:
    calling an instance goes through `__call__`, which CPython 3.11 makes about twice as slow as calling a
    plain function, and with only `--type`/`--exclude` that call overhead is most of the cost.
    """

    __slots__ = (
        "_call_prefixes",
        "_claimed",
        "_conditions",
        "_exclude",
        "_include",
        "_matched",
        "_more",
        "_on_ambiguous",
        "_tests",
        "_verdicts",
        "active",
        "predicate",
        "warnings",
    )

    def __init__(
        self,
        *,
        types: str | Sequence[str] = (),
        exclude: str | Sequence[str] = (),
        call_id: str | Sequence[str] | None = None,
        where: str | Sequence[str] = (),
        on_ambiguous: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        include_globs, exclude_globs = _as_tuple(types), _as_tuple(exclude)
        self._include = _globs("--type", include_globs)
        self._exclude = _globs("--exclude", exclude_globs)
        self._verdicts: dict[str, bool] = {}
        prefixes = _as_tuple(call_id)
        for prefix in prefixes:
            if not prefix.strip():
                raise FilterError(
                    f"--call-id {_quote(prefix)}: empty call id; give a call id or its first few characters"
                )
        self._call_prefixes = prefixes or None
        # The id each prefix matched first, and every id already matched (at most one per prefix).
        self._claimed: dict[str, str] = {}
        self._matched: set[str] = set()
        self._on_ambiguous = on_ambiguous
        wheres = _as_tuple(where)
        self._conditions = tuple(parse_where(expr) for expr in wheres)
        self._tests = tuple(condition.__call__ for condition in self._conditions)
        self._more = bool(prefixes) or bool(self._conditions)
        by_type = self._include is not None or self._exclude is not None
        self.active: bool = by_type or self._more
        self.predicate: Callable[[dict[str, Any]], bool] = self._specialise()
        notes = _type_warnings("--type", include_globs) + _type_warnings("--exclude", exclude_globs)
        for expr, condition in zip(wheres, self._conditions, strict=True):
            notes += _where_warnings(expr, condition)
        self.warnings: tuple[str, ...] = tuple(notes + _call_id_warnings(prefixes))

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
        if self._call_prefixes is not None and not self._matches_call(payload, self._call_prefixes):
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

    def _matches_call(self, payload: dict[str, Any], prefixes: tuple[str, ...]) -> bool:
        """`call_ids(payload)` has an id starting with a prefix; inlined, as most events of a session fail it."""
        params = payload.get("params") if isinstance(payload, dict) else None
        if not isinstance(params, dict):
            return False
        matched = False
        seen = self._matched
        cid = params.get("call_id")
        if cid.__class__ is str and cid.startswith(prefixes):
            matched = True
            if cid not in seen:
                self._claim(cid)
        for key in ("call", "peer"):
            linked = params.get(key)
            if linked.__class__ is dict:
                cid = linked.get("call_id")
                if cid.__class__ is str and cid.startswith(prefixes):
                    matched = True
                    if cid not in seen:
                        self._claim(cid)
        cid = params.get("message_id")
        if cid.__class__ is str and cid.startswith(prefixes):
            matched = True
            if cid not in seen:
                self._claim(cid)
        return matched

    def _claim(self, cid: str) -> None:
        """Note an id matched for the first time; a second id for the same prefix makes that prefix ambiguous.

        An id equal to the prefix is the id the user typed in full: it never makes the prefix ambiguous.
        """
        assert self._call_prefixes is not None
        for prefix in self._call_prefixes:
            if cid.startswith(prefix) and cid != prefix:
                first = self._claimed.setdefault(prefix, cid)
                if first != cid:
                    if self._on_ambiguous is not None:
                        self._on_ambiguous(prefix, [first, cid])
                    raise AmbiguousCallId(prefix, [first, cid])
        self._matched.add(cid)


_DIRECTIONS: Final = {
    APP_TO_RELAY: APP_TO_RELAY,
    RELAY_TO_APP: RELAY_TO_APP,
    "app": APP_TO_RELAY,
    "relay": RELAY_TO_APP,
}
_ANSWERS: Final = (Kind.RESULT, Kind.ERROR)


def _direction(value: str | None) -> str | None:
    if value is None:
        return None
    found = _DIRECTIONS.get(value.strip().lower())
    if found is None:
        raise FilterError(f"--direction {_quote(value)}: expected {APP_TO_RELAY} (or app) or {RELAY_TO_APP} (or relay)")
    return found


class FrameFilter:
    """Decides, per frame of a conversation both ways, whether it is shown (``relay proxy``, ``replay --frames``).

    Two kinds of selector: `methods` globs select requests (an event counts as method ``signalwire.event``) and
    `types` globs and `where` conditions select events (as `EventFilter` does); a frame is shown when a selector
    of its kind selects it, and given selectors of only one kind, frames of the other kind are hidden. Answers
    follow their request: a result or error is shown when what it answers was (see `accepts_answer`). `exclude`
    (event types) and `call_id` (a request's ``params.call_id``, an event's ids as `call_ids` finds them) narrow
    everything, and so does `direction` (``app>relay`` or ``relay>app``; ``app`` and ``relay`` for short).
    A frame that is not JSON-RPC is flagged, not selected: only `direction` hides it.

    The event tests are `EventFilter`'s own (one copy of the globs, the call-id prefixes and `--where`), so a
    `--call-id` prefix matching two ids raises `AmbiguousCallId` here as there. `warnings` are theirs.
    """

    __slots__ = ("_by_event", "_by_method", "_calls", "_direction", "_exclude", "_methods", "active", "warnings")

    def __init__(
        self,
        *,
        types: str | Sequence[str] = (),
        exclude: str | Sequence[str] = (),
        call_id: str | Sequence[str] | None = None,
        where: str | Sequence[str] = (),
        methods: str | Sequence[str] = (),
        direction: str | None = None,
        on_ambiguous: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        self._direction = _direction(direction)
        method_globs = _as_tuple(methods)
        for glob in method_globs:
            if not glob.strip():
                raise FilterError(
                    f"--method {_quote(glob)}: empty pattern; give a method or a glob such as 'calling.*'"
                )
        self._methods = _globs("--method", method_globs)
        select = EventFilter(types=types, where=where)
        narrow = EventFilter(exclude=exclude)
        calls = EventFilter(call_id=call_id, on_ambiguous=on_ambiguous)
        self._by_event = select.predicate if select.active else None
        self._by_method = self._methods is not None
        self._exclude = narrow.predicate if narrow.active else None
        self._calls = calls.predicate if calls.active else None
        self.active: bool = (
            select.active or narrow.active or calls.active or self._by_method or self._direction is not None
        )
        self.warnings: tuple[str, ...] = select.warnings + narrow.warnings + calls.warnings

    def accepts(self, direction: str, kind: Kind | None, frame: Any) -> bool:
        """A request, an event or a frame that is not JSON-RPC (``kind`` None); answers: `accepts_answer`."""
        return self.in_direction(direction) and self.selects(kind, frame)

    def in_direction(self, direction: str) -> bool:
        """Whether `direction` lets frames going this way through."""
        return self._direction is None or direction == self._direction

    def selects(self, kind: Kind | None, frame: Any) -> bool:
        """`accepts` without `direction`: whether the selectors pick the frame, which its answers then follow
        whichever way they go (a request hidden by ``--direction relay`` still has its result shown)."""
        if kind is None or kind in _ANSWERS:
            return kind is None or self._unpaired()
        if kind is Kind.EVENT:
            payload = frame.get("params") if isinstance(frame, dict) else None
            if not isinstance(payload, dict):
                payload = {}
            if self._by_event is not None:
                selected = self._by_event(payload) or (self._by_method and self._method(Kind.EVENT.value))
            else:
                selected = not self._by_method or self._method(Kind.EVENT.value)
            if not selected or (self._exclude is not None and not self._exclude(payload)):
                return False
            return self._calls is None or self._calls(payload)
        if self._by_event is not None and not self._by_method:
            return False
        method = frame.get("method") if isinstance(frame, dict) else None
        if self._by_method and not self._method(method if isinstance(method, str) else ""):
            return False
        return self._calls is None or self._calls(frame if isinstance(frame, dict) else {})

    def accepts_answer(self, direction: str, request: bool | None) -> bool:
        """A result or an error: ``request`` is whether what it answers was shown (None: no request seen, shown
        only when nothing but `direction` is filtered)."""
        if not self.in_direction(direction):
            return False
        return self._unpaired() if request is None else request

    def _unpaired(self) -> bool:
        """An answer to nothing seen is shown only when nothing but `direction` filters."""
        return self._by_event is None and not self._by_method and self._exclude is None and self._calls is None

    def _method(self, method: str) -> bool:
        return self._methods is not None and self._methods.match(method) is not None
