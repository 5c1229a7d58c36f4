"""The ``relay`` command line: options, environment variables and exit codes, wired to the library.

Each command connects a source to the shared sinks; the work lives in the modules below this one.
Errors a user can cause become one line on stderr and an exit code, never a traceback: the library
raises a :class:`~relay_cli.errors.RelayError`, and one handler (``_Commands``) prints it, adding the
options that would fix it, which only this module knows.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Annotated, Any, TypeGuard

import typer
from typer.core import TyperGroup

from relay_cli import __version__
from relay_cli.errors import RelayError, Terminated, UsageError
from relay_cli.pipeline.filters import REGEX_TEXT_LIMIT, AmbiguousCallId, EventFilter, FrameFilter
from relay_cli.pipeline.reader import STDIN, InputError, Source, entries, where
from relay_cli.pipeline.recording import Recorder
from relay_cli.pipeline.replay import Pacer
from relay_cli.pipeline.replay import replay as replay_logs
from relay_cli.pipeline.stages import Pipeline, without_gc
from relay_cli.protocol import Secrets
from relay_cli.terminal import Color, ExitCode, Terminal
from relay_cli.views.parse import Problem, parse_view
from relay_cli.views.printers import Format, escape, make_printer, terminal_width

if TYPE_CHECKING:
    import ssl

    from relay_cli.certs import LocalCA
    from relay_cli.outbuf import OutBuffer
    from relay_cli.views.proxy import ProxyView

__all__ = ["app", "main"]

EXIT_CODES = (
    "Exit codes: 0 ok, 1 runtime failure (connection, authentication, bad input found), 2 usage error, "
    "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."
)

_TERMINAL = "relay.terminal"
_COMMAND = "relay.command"
"""Keys of ``click.Context.meta`` (shared by a command's context and the group's): the command's Terminal, and
the command line an input error should suggest, when it is not the command's name."""

# What to do about an error, in terms of relay's options, which the library does not know; by class name, so
# that telling needs no import (subclasses match too).
_HINTS = {
    "relay_cli.session.AuthError": "; check --project/SIGNALWIRE_PROJECT_ID, --token/SIGNALWIRE_API_TOKEN"
    " (or --jwt/SIGNALWIRE_JWT_TOKEN) and --space/SIGNALWIRE_SPACE",
    "relay_cli.session.UntrustedCertificate": "; pass --ca-file or set SIGNALWIRE_RELAY_CA_FILE",
    "relay_cli.pipeline.workers.WorkerDied": "; --jobs 1 reads in this process",
}


def _message(exc: RelayError, command: str) -> str:
    """The stderr line for an error: its message, worded for the command that read the input, and a hint."""
    text = exc.for_command(command) if isinstance(exc, InputError) else str(exc)
    for cls in type(exc).__mro__:
        hint = _HINTS.get(f"{cls.__module__}.{cls.__qualname__}")
        if hint is not None:
            return text + hint
    return text


class _Commands(TyperGroup):
    """relay's commands, and the one place where what the library raises becomes a line on stderr and an exit
    code: a :class:`RelayError` its own, a closed stdout (``relay ... | head``) 0, SIGTERM 143."""

    def invoke(self, ctx: Any) -> Any:  # a Context of typer's own copy of click
        try:
            return super().invoke(ctx)
        except RelayError as exc:
            term = ctx.meta.get(_TERMINAL) or Terminal()
            term.warn(_message(exc, ctx.meta.get(_COMMAND) or ctx.invoked_subcommand or ""))
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            raise typer.Exit(ExitCode.OK) from None
        except Terminated as exc:
            raise typer.Exit(exc.exit_code) from None


def _recording(record: str | None) -> TypeGuard[str]:
    """Whether ``--record`` was given; an empty name (``--record "$UNSET"``) is a usage error, not no recording."""
    if record is not None and not record.strip():
        raise UsageError("--record needs a file name: it was given an empty one")
    return record is not None


def _terminal(ctx: typer.Context, **options: Any) -> Terminal:
    """The command's Terminal, which the error handler then prints with too (it redacts the command's secrets)."""
    term = Terminal(**options)
    ctx.meta[_TERMINAL] = term
    return term


app = typer.Typer(
    name="relay",
    cls=_Commands,
    help=(
        "See what a SignalWire RELAY account is doing: live, from a recording, or from one payload.\n\n"
        "New here? Start with relay tail --demo: a built-in RELAY emulator, no account and no network.\n\n"
        "Examples:\n"
        "  relay tail --demo                            # demo calls and messages, live\n"
        "  relay tail -c office --record office.jsonl   # a context of your space, recorded\n"
        "  relay calls office.jsonl                     # that recording, one block per call\n\n"
        f"{EXIT_CODES}"
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

ColorOption = Annotated[
    Color,
    typer.Option("--color", help="Colour on stdout: auto (a terminal without NO_COLOR), always or never."),
]
FormatOption = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-o",
        help="pretty (cut to the terminal's width), json (payloads), frame, typed, or none.",
        show_default="pretty on a terminal, json when piped",
    ),
]


class ParseFormat(StrEnum):
    """``relay parse`` prints typed events: a table per event, or their typed JSON."""

    pretty = "pretty"
    json = "json"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"relay {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """See what a SignalWire RELAY account is doing."""


@app.command(epilog=EXIT_CODES)
def parse(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(help="A JSON, JSON array or JSON Lines file; - or nothing for stdin.", show_default=False),
    ] = None,
    fmt: Annotated[
        ParseFormat | None,
        typer.Option(
            "--format",
            "-o",
            help="pretty: a table per event; json: typed JSON lines.",
            show_default="pretty on a terminal, json when piped",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also fail on event types neither the SDK nor the RELAY protocol defines.")
    ] = False,
    color: ColorOption = Color.auto,
) -> None:
    """Show what a payload or frame is, typed: one entry per event.

    Takes bare event payloads or whole signalwire.event frames; other JSON-RPC frames are named for
    what they are. Problems are reported as FILE:LINE: message on stderr.

    Examples:
      relay parse payload.json                     # its type and typed fields, as a table
      relay parse --strict -o json events.jsonl    # typed JSON; fail on unknown event types
    """
    term = _terminal(ctx)
    if file is None and term.stdin_tty:
        raise UsageError("no input: give a FILE, or pipe JSON into stdin (relay parse --help)")
    source = Source(file or STDIN)
    pretty = fmt is ParseFormat.pretty or (fmt is None and term.stdout_tty)
    with without_gc():
        shown = parse_view(
            entries(source),
            functools.partial(where, source),
            pretty=pretty,
            style=term.style(color),
            strict=strict,
            terminal=term.stdout_tty,
        )
        if _write(term, shown):
            raise typer.Exit(ExitCode.FAILURE)


def _write(term: Terminal, shown: Iterable[bytes | Problem]) -> bool:
    """Write a view's bytes to stdout, a batch at a time, and its problems to stderr; say whether any failed."""
    out: list[bytes] = []
    failed = False
    try:
        for item in shown:
            if isinstance(item, Problem):
                term.problem(item.where, item.message)
                failed = failed or item.failed
                continue
            out.append(item)
            if len(out) >= 512:
                term.stdout.write(b"".join(out))
                out.clear()
    finally:
        term.stdout.write(b"".join(out))
        term.stdout.flush()
    return failed


TypeOption = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", help="Show only event types matching this glob (calling.call.*); repeatable."),
]
ExcludeOption = Annotated[
    list[str] | None, typer.Option("--exclude", "-x", help="Hide event types matching this glob; repeatable.")
]
CallIdOption = Annotated[
    list[str] | None,
    typer.Option(
        "--call-id",
        help="Only events of this call or message (a unique prefix is enough), dials and peers included;"
        " repeatable, any matches. A prefix matching two ids stops with an error.",
    ),
]
WhereOption = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        "-w",
        help="PATH=VALUE (== works too), PATH!=VALUE or PATH~REGEX on the payload, e.g. params.call_state=ended;"
        f" repeatable, all hold. A REGEX sees the first {REGEX_TEXT_LIMIT} characters of the value, and one that could"
        " backtrack for long on them, such as (a+)+ or a.*b.*c, is refused.",
    ),
]
LogsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Recordings (JSON Lines, a JSON array or object); - or nothing for stdin.", show_default=False),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="pretty: add the typed fields under each line.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="On stderr, only warnings and errors: no status lines, no summary.")
]


def _source(ctx: typer.Context, name: str) -> str:
    """Where an option's value came from: COMMANDLINE, ENVIRONMENT, DEFAULT (click's ParameterSource names)."""
    source = ctx.get_parameter_source(name)
    return source.name if source is not None else "DEFAULT"


def _spelled(ctx: typer.Context, name: str, value: str | None) -> str:
    """An option's value as the user gave it: `--ca-file X`, or `SIGNALWIRE_RELAY_CA_FILE='X' (from the environment)`
    when it came from there."""
    param = next((p for p in ctx.command.params if p.name == name), None)
    if param is None or not param.opts:
        return repr(value)
    if _source(ctx, name) == "ENVIRONMENT" and isinstance(param.envvar, str):
        return f"{param.envvar}={value!r} (from the environment)"
    return f"{param.opts[0]} {value}"


def _endpoint(ctx: typer.Context, url: str | None, space: str | None, url_option: str = "url") -> str:
    """The URL to dial, or a usage error naming the option it came from (its variable, when from the
    environment: the user never typed the flag, and would look for it in vain). ``url_option`` is the name of
    the command's URL option (``--url`` of tail, ``--upstream`` of proxy)."""
    from relay_cli.session import EndpointError, endpoint_url

    try:
        return endpoint_url(url=url, host=space)
    except EndpointError as exc:
        name = url_option if exc.param == "url" else "space"
        hint = f" (or use --{url_option})" if exc.scheme else ""
        if _source(ctx, name) == "ENVIRONMENT":
            message = f"{_spelled(ctx, name, space)}: {exc.detail.lstrip(': ')}{hint}"
        else:
            message = f"--{name} {exc.value!r}{exc.detail}{hint}"
        raise UsageError(message) from None


def _check_tail_options(ctx: typer.Context, *, demo: bool, url: str | None) -> None:
    """Refuse flags that another one given with them would make relay ignore. Values from the environment do
    not count: SIGNALWIRE_PROJECT_ID set in a shell must not stop `relay tail --demo`. (-v goes with any format
    here: besides the typed fields of pretty lines, it shows the outcome of each calling.pass on stderr.)"""
    typed = [
        p.opts[0]
        for p in ctx.command.params
        if p.name in ("url", "project", "token", "jwt", "space", "ca_file")
        and p.opts
        and _source(ctx, p.name) == "COMMANDLINE"
    ]
    if demo and typed:
        raise UsageError(
            f"--demo cannot be used with {', '.join(typed)}: --demo runs a built-in emulator, with no account"
        )
    if not demo and _source(ctx, "rate") == "COMMANDLINE":
        raise UsageError("--rate paces the built-in emulator's traffic: it goes with --demo")
    if url is not None and "--space" in typed:
        raise UsageError("--url and --space cannot be used together: --url names the endpoint itself")


def _check_verbose(term: Terminal, verbose: bool, fmt: Format | None) -> None:
    """-v adds typed fields under pretty lines: with any other format, explicit or the default off a terminal, it
    would be ignored without a word."""
    shown = term.default_format(fmt)
    if verbose and shown is not Format.pretty:
        how = f"--format {shown}" if fmt is not None else f"the format is {shown} (stdout is not a terminal)"
        raise UsageError(
            f"--verbose adds typed fields to pretty output, but {how}: add --format pretty, or drop --verbose"
        )


def _filter(
    term: Terminal,
    types: list[str] | None,
    exclude: list[str] | None,
    call_id: list[str] | None,
    where: list[str] | None,
) -> Callable[[dict[str, Any]], bool] | None:
    """The shared filter, or None when nothing filters (the pipeline then skips the call).

    Its warnings go to stderr before the run. An ambiguous --call-id prefix (:class:`AmbiguousCallId`, a usage
    error found late) ends the run there, with exit 2, and the events of the first call shown so far stay shown.
    """
    flt = EventFilter(types=types or (), exclude=exclude or (), call_id=call_id, where=where or ())
    for warning in flt.warnings:
        term.warn(warning)
    return flt.predicate if flt.active else None


@app.command(epilog=EXIT_CODES)
def tail(
    ctx: typer.Context,
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="Receive inbound calls and messages on this context; repeatable."),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", envvar="SIGNALWIRE_PROJECT_ID", help="Project id.", show_default=False)
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="SIGNALWIRE_API_TOKEN", help="API token.", show_default=False)
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            "--host",
            envvar="SIGNALWIRE_SPACE",
            help="Space host, e.g. example.signalwire.com.",
            show_default=False,
        ),
    ] = None,
    jwt: Annotated[
        str | None,
        typer.Option(
            "--jwt", envvar="SIGNALWIRE_JWT_TOKEN", help="A JWT instead of project and token.", show_default=False
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Connect to this ws:// (loopback only) or wss:// endpoint instead of the space."),
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option("--ca-file", envvar="SIGNALWIRE_RELAY_CA_FILE", help="CA bundle to trust for wss://."),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Tail a built-in RELAY emulator: no account, no network. It serves no app, so its calls are kept.",
        ),
    ] = False,
    rate: Annotated[float, typer.Option("--rate", min=0, help="With --demo: demo events per second.")] = 5.0,
    keep_calls: Annotated[
        bool,
        typer.Option(
            "--keep-calls",
            help="Do not pass offered calls back to routing: only for a context no app serves (a call relay keeps"
            " rings unanswered, as the server offers each call to one subscriber). --demo always keeps them.",
        ),
    ] = False,
    types: TypeOption = None,
    exclude: ExcludeOption = None,
    call_id: CallIdOption = None,
    where: WhereOption = None,
    fmt: FormatOption = None,
    verbose: VerboseOption = False,
    record: Annotated[
        str | None, typer.Option("--record", help="Append every received event (unfiltered) to this JSONL file.")
    ] = None,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Exit after showing N events.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="Exit after this many seconds.")] = None,
    color: ColorOption = Color.auto,
    quiet: QuietOption = False,
) -> None:
    """Watch a RELAY session live: connect, ACK and show every event, optionally recording them.

    Status lines and the closing summary go to stderr; stdout carries events only.

    Every call offered on a context is passed back to routing (calling.pass) so that the app serving the
    context still gets it; --keep-calls turns that off. Inbound messages cannot be passed.

    Examples:
      relay tail --demo                                   # demo traffic from a built-in emulator
      relay tail -c office --record office.jsonl          # a context of your space, recorded
      relay tail -t 'calling.call.*' -w params.call_state=ended -o json | jq .params.call_id
    """
    import ssl  # here, as the live modules are: at the top it would slow every command's start-up

    from relay_cli.outbuf import DEFAULT_LIMIT, OutBuffer, OutputError
    from relay_cli.run import Demo, LiveTail
    from relay_cli.session import Credentials, RelaySession, SessionConfig, SessionError, is_loopback_url

    term = _terminal(ctx, quiet=quiet, secrets=Secrets(token, jwt))
    _check_tail_options(ctx, demo=demo, url=url)
    if not demo and not jwt and not (project and token):
        missing = " and ".join(
            f"--{name} (or {var})"
            for name, var, given in (
                ("project", "SIGNALWIRE_PROJECT_ID", project),
                ("token", "SIGNALWIRE_API_TOKEN", token),
            )
            if not given
        )
        raise UsageError(f"missing {missing}; or give --jwt (or SIGNALWIRE_JWT_TOKEN) instead")
    demo_run = Demo(rate=rate) if demo else None
    if demo_run is not None:
        config = demo_run.config(context or [])
    else:
        endpoint = _endpoint(ctx, url, space)
        try:
            tls = ssl.create_default_context(cafile=ca_file) if ca_file else None
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"{_spelled(ctx, 'ca_file', ca_file)}: cannot load: {exc}") from None
        credentials = Credentials(project=project, token=token, jwt=jwt)
        config = SessionConfig(
            url=endpoint, credentials=credentials, contexts=list(context or []), ssl=tls, pass_calls=not keep_calls
        )
    accept = _filter(term, types, exclude, call_id, where)
    if not config.contexts:
        term.warn("no --context given: inbound calls and messages will not arrive, only events of calls you make")
    elif not is_loopback_url(config.url):
        term.warn(
            "inbound messages cannot be passed: messages relay receives on a context an app serves do not reach the app"
        )
    recorder = Recorder(record) if _recording(record) else None
    fmt = term.default_format(fmt)
    kept = "; the recording keeps them" if recorder is not None else ""
    blocked = f"stdout is blocked ({DEFAULT_LIMIT >> 20} MiB unread): events are left out of the display{kept}"
    output = OutBuffer(term.stdout.fileno(), on_full=lambda: term.warn(blocked))
    pipeline = Pipeline(
        out=output,
        printer=make_printer(
            fmt,
            term.style(color),
            verbose,
            width=terminal_width(term.stdout_tty),
            terminal=term.stdout_tty,
            passing=config.pass_calls,
        ),
        accept=accept,
        count=count,
        flush=True,
    )
    # The recorder writes each event before its ACK: an ACKed event is in the recording.
    live = LiveTail(
        config,
        pipeline,
        session=functools.partial(
            RelaySession,
            status=term.status,
            problem=term.warn,
            debug=term.status if verbose else lambda _: None,
            on_event=recorder.write if recorder is not None else None,
            secrets=term.secrets,
        ),
        timeout=timeout,
        demo=demo_run,
    )
    wait: float | None = 1.0
    failure: SessionError | None = None
    try:
        code = live.run()
        if not code:
            wait = None
    except SessionError as exc:  # said after the run is wound up, and before its summary
        failure, code = exc, exc.exit_code
    finally:
        if recorder is not None:
            recorder.close()
        # A normal end waits for a slow reader of the output; a signal or a failure ends within a second.
        flushed = output.close(limit=wait)
    if isinstance(pipeline.output_error, BrokenPipeError) or output.broken:
        raise typer.Exit(ExitCode.OK)
    if output.error is not None:
        raise OutputError.of(output.error)
    if failure is not None:
        term.warn(_message(failure, "tail"))
    stats = live.stats
    extra = {"reconnects": stats.reconnects, "malformed frames": stats.malformed}
    if stats.duplicates:
        extra["redelivered duplicates hidden"] = stats.duplicates
    for line in pipeline.tally.summary(**extra):
        term.status(line)
    if pipeline.hidden:
        term.warn(f"{pipeline.hidden} events not shown: stdout was blocked")
    if not flushed:
        term.warn(f"{output.pending} bytes of output not written: stdout was blocked at exit")
    if code:
        raise typer.Exit(code)
    if pipeline.hidden or not flushed:
        raise typer.Exit(ExitCode.FAILURE)


class FrameFormat(StrEnum):
    """``relay serve`` and ``relay proxy`` print frames: one line each, one JSON record each, or none."""

    pretty = "pretty"
    json = "json"
    none = "none"


FrameFormatOption = Annotated[
    FrameFormat | None,
    typer.Option(
        "--format",
        "-o",
        help="Frames on stdout: pretty (a line each), json (a record each), or none.",
        show_default="pretty on a terminal, json when piped",
    ),
]
FrameVerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="pretty: also show ACKs, pings and pongs.")]


def _frame_format(term: Terminal, fmt: FrameFormat | None, *, quiet: bool, verbose: bool) -> FrameFormat:
    """What frames look like on stdout: as asked; none with -q; else pretty on a terminal, JSON when piped."""
    shown = FrameFormat.none if quiet and fmt is None else fmt
    shown = shown or (FrameFormat.pretty if term.stdout_tty else FrameFormat.json)
    if verbose and shown is not FrameFormat.pretty:
        how = f"--format {shown}" if fmt is not None else f"the format is {shown} (stdout is not a terminal)"
        raise UsageError(f"--verbose adds ACKs and pings to pretty output, but {how}: add --format pretty, or drop -v")
    return shown


def _frame_view_options(term: Terminal, shown: FrameFormat, verbose: bool) -> dict[str, Any]:
    """The options of a frame view (serve's, the proxy's) for this terminal."""
    import sys

    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return {
        "json": shown is FrameFormat.json,
        "verbose": verbose,
        "width": terminal_width(term.stdout_tty),
        "terminal": term.stdout_tty,
        "ascii": term.stdout_tty and encoding != "utf8",
    }


def _proxy_view(term: Terminal, color: Color, accept: FrameFilter, shown: FrameFormat, verbose: bool) -> ProxyView:
    """The proxy's view of frames (``relay proxy``, ``relay replay --frames``); with ``-o none`` it only counts."""
    from relay_cli.views.proxy import ProxyView

    options = _frame_view_options(term, shown, verbose)
    return ProxyView(term.style(color), accept=accept, lines=shown is not FrameFormat.none, **options)


def _frame_output(term: Terminal) -> OutBuffer:
    """stdout for frame lines, through a buffer a stuck reader cannot stall the network role behind."""
    from relay_cli.outbuf import DEFAULT_LIMIT, OutBuffer

    blocked = f"stdout is blocked ({DEFAULT_LIMIT >> 20} MiB unread): frames are left out of the display"
    return OutBuffer(term.stdout.fileno(), on_full=lambda: term.warn(blocked))


def _frame_filter(
    term: Terminal,
    types: list[str] | None,
    exclude: list[str] | None,
    call_id: list[str] | None,
    where: list[str] | None,
    methods: list[str] | None,
    direction: str | None,
) -> FrameFilter:
    """The filter of frames both ways (relay proxy, replay --frames); its warnings go to stderr first."""
    accept = FrameFilter(
        types=types or (),
        exclude=exclude or (),
        call_id=call_id,
        where=where or (),
        methods=methods or (),
        direction=direction,
    )
    for warning in accept.warnings:
        term.warn(warning)
    return accept


def _check_serve_options(
    ctx: typer.Context, *, demo: bool, scripted: bool, replay: str | None, far_ends: str | None, speed: float
) -> None:
    """Refuse flags that the chosen traffic would ignore, naming both sides."""
    if demo and scripted:
        raise UsageError("--demo and --scripted cannot be used together: pick one kind of traffic")
    if scripted and replay:
        raise UsageError("--replay sends a recording's events: it cannot go with --scripted, which sends none unasked")
    demo_like = demo or replay is not None
    for name in ("rate", "events"):
        if not demo_like and _source(ctx, name) == "COMMANDLINE":
            raise UsageError(f"--{name} paces demo traffic: it goes with --demo or --replay")
    if demo_like and far_ends is not None:
        raise UsageError("--far-ends scripts the parties an app talks to: demo traffic plays its own")
    if (demo_like or scripted) and _source(ctx, "callers") == "COMMANDLINE":
        raise UsageError("--callers places calls for an app to answer: it goes with neither --demo nor --scripted")
    if not speed > 0:
        raise UsageError(f"--speed {speed:g}: must be above 0 (2 halves every delay)")


def _control_port(port: int, control_port: int | None) -> int:
    """The control plane's port: as given; else the WebSocket port + 1000, or a free one with --port 0."""
    if control_port is None:
        if port == 0:
            return 0
        if port + 1000 > 65535:
            raise UsageError(
                f"--port {port}: the control plane's default port {port + 1000} is above 65535: give --control-port"
            )
        return port + 1000
    if control_port and control_port == port:
        raise UsageError(f"--control-port {control_port} is the WebSocket port: give another (or 0 for a free one)")
    return control_port


def _load_far_ends(path: str) -> Any:
    """The rules of --far-ends FILE; a file that cannot be used is a usage error naming what is wrong."""
    import orjson

    from relay_cli.emulator.farends import FarEndError, parse_far_ends

    try:
        with open(path, "rb") as file:
            data = file.read(_FAR_ENDS_LIMIT + 1)
    except FileNotFoundError:
        raise UsageError(f"--far-ends {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"--far-ends {path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > _FAR_ENDS_LIMIT:
        raise UsageError(f"--far-ends {path}: larger than {_FAR_ENDS_LIMIT >> 20} MiB")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"--far-ends {path}: not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    try:
        return parse_far_ends(value)
    except FarEndError as exc:
        raise UsageError(f"--far-ends {path}: {exc}") from None


_FAR_ENDS_LIMIT = 8 * 2**20


@app.command(epilog=EXIT_CODES)
def serve(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option("--demo", help="Demo traffic: the emulator plays the callers and an app of its own.")
    ] = False,
    scripted: Annotated[
        bool,
        typer.Option(
            "--scripted",
            help="mock_relay semantics: each verb gets its result and no event; events only from the control plane.",
        ),
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (WebSocket and control plane).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="WebSocket port; 0 picks a free one.")] = 8765,
    control_port: Annotated[
        int | None,
        typer.Option(
            "--control-port",
            min=0,
            max=65535,
            help="Control plane (HTTP) port; 0 picks a free one.",
            show_default="--port + 1000; a free one with --port 0",
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", help="Every simulated delay (ringing, media, far ends) SPEED times shorter.")
    ] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for reproducible traffic.")] = None,
    far_ends: Annotated[
        str | None,
        typer.Option("--far-ends", help="JSON rules for the far ends: a default and per-number scripts (see README)."),
    ] = None,
    callers: Annotated[
        float,
        typer.Option(
            "--callers",
            min=0,
            help="Inbound calls a (simulated) minute on 'default', from the default far end.",
        ),
    ] = 0.0,
    project: Annotated[
        str | None, typer.Option("--project", help="Accept only this project id (default: any non-empty).")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Accept only this token (default: any non-empty).", show_default=False)
    ] = None,
    tls_local: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve wss:// with a certificate from relay's local CA, as SignalWire's SDKs dial; prints the two"
            " settings an app needs.",
        ),
    ] = False,
    ca_dir: CaDirOption = None,
    certfile: Annotated[
        str | None, typer.Option("--certfile", help="TLS certificate (PEM) of your own: serve wss:// with it.")
    ] = None,
    keyfile: Annotated[str | None, typer.Option("--keyfile", help="TLS private key (PEM) for --certfile.")] = None,
    rate: Annotated[
        float, typer.Option("--rate", min=0, help="With --demo or --replay: events per second per session; 0: unpaced.")
    ] = 5.0,
    events: Annotated[
        int | None,
        typer.Option("--events", min=0, help="With --demo or --replay: stop after N events per session."),
    ] = None,
    ping_interval: Annotated[
        float, typer.Option("--ping-interval", min=0, help="Seconds between server pings; 0: never.")
    ] = 20.0,
    replay: Annotated[
        str | None, typer.Option("--replay", help="Send the events of this recording instead of demo traffic.")
    ] = None,
    fmt: FrameFormatOption = None,
    verbose: FrameVerboseOption = False,
    color: ColorOption = Color.auto,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Only the start line, warnings and errors on stderr; no frames unless -o is given."
        ),
    ] = False,
    record: Annotated[
        str | None,
        typer.Option(
            "--record", help='Append every frame, both ways, to this JSONL file (each a frame plus its "_relay" key).'
        ),
    ] = None,
    playback: Annotated[
        str | None,
        typer.Option(
            "--playback",
            help="Answer the app from this two-way recording (relay serve/proxy --record): its requests get the"
            " recorded results, the recorded calls and events follow.",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="With --playback: exit 1 if a request had no match or a recorded one was never asked."
        ),
    ] = False,
    ignore_param: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-param",
            metavar="[METHOD:]NAME",
            help="With --playback: match requests whatever this param holds (text: at any depth of every request;"
            " calling.play:text: of calling.play only). Repeatable.",
        ),
    ] = None,
) -> None:
    """Run a local RELAY for apps: call-control verbs, virtual far ends, a control plane; every frame shown.

    SignalWire's SDKs dial wss://: with --tls it prints the SIGNALWIRE_SPACE and SIGNALWIRE_RELAY_CA_FILE to
    run an app with. relay tail --url takes the ws:// address it prints without. Start calls with relay call, or
    through the control plane. Ctrl-C stops it.

    Examples:
      relay serve --tls                                   # an app's RELAY, frames both ways on stdout
      relay serve --far-ends far-ends.json --speed 10     # scripted parties, ten times faster
      relay serve --demo --seed 1                         # the same demo traffic on every run
      relay serve --scripted --port 0 --control-port 0 -o json   # for a test suite written against mock_relay
      relay serve --record session.jsonl                  # frames both ways kept; relay replay shows its events
      relay serve --playback prod.jsonl --strict          # answer the app as recorded; exit 1 if it did otherwise
      relay serve --playback prod.jsonl --ignore-param text   # however the prompts are worded now
    """
    import ssl

    from relay_cli.emulator import Emulator
    from relay_cli.emulator.sessions import Mode
    from relay_cli.pipeline.recording import FrameRecorder
    from relay_cli.pipeline.replay import load
    from relay_cli.protocol import ConnectionNumbers
    from relay_cli.run import FramePrinter, JournalRecorder, load_playback, run_serve
    from relay_cli.views.frames import FrameView

    term = _terminal(ctx, quiet=quiet)
    _check_serve_options(ctx, demo=demo, scripted=scripted, replay=replay, far_ends=far_ends, speed=speed)
    if playback is not None and (demo or scripted or replay is not None or far_ends is not None):
        raise UsageError(
            "--playback answers the app from a recording: it goes with none of --demo, --scripted, --replay, --far-ends"
        )
    if playback is not None and _source(ctx, "callers") == "COMMANDLINE":
        raise UsageError("--callers places calls of its own: --playback plays the recorded ones")
    if strict and playback is None:
        raise UsageError("--strict checks a playback: it goes with --playback")
    ignored: dict[str, frozenset[str]] = {}
    if ignore_param:
        from relay_cli.emulator.playback import ignored_params

        if playback is None:
            raise UsageError("--ignore-param loosens a playback's matching: it goes with --playback")
        try:
            ignored = ignored_params(ignore_param)
        except ValueError as exc:
            raise UsageError(f"--ignore-param {exc}") from None
    cport = _control_port(port, control_port)
    shown = _frame_format(term, fmt, quiet=quiet, verbose=verbose)
    tls = None
    if tls_local and (certfile or keyfile):
        raise UsageError(
            "--tls signs a certificate with relay's local CA: it goes with neither --certfile nor --keyfile"
        )
    if ca_dir is not None and not tls_local:
        raise UsageError("--ca-dir is where the local CA for --tls is kept: give --tls too")
    if certfile or keyfile:
        if not (certfile and keyfile):
            raise UsageError("--certfile and --keyfile go together")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load --certfile/--keyfile: {exc}") from None
    rules = _load_far_ends(far_ends) if far_ends is not None else None
    payloads = None
    if replay:
        ctx.meta[_COMMAND] = "serve --replay"
        payloads = load(replay, term.problem)
    recorded = None
    if playback is not None:
        ctx.meta[_COMMAND] = "serve --playback"
        recorded = load_playback(playback, term.problem)
    mode: Mode = "demo" if demo or replay is not None else "scripted" if scripted else "app"
    ca = None
    created = False
    if tls_local:  # last, once every input has loaded: a CA made by a run that then fails would go unannounced
        ca, tls, created = _local_tls(ca_dir, host)

    def log(message: str) -> None:
        if message.startswith("RELAY emulator on "):  # said by started(), even with -q
            return
        (term.warn if ": playback: " in message else term.status)(message)  # a playback's misses, even with -q

    emulator = Emulator(
        host=host,
        port=port,
        ssl=tls,
        project=project,
        token=token,
        rate=rate,
        events=events,
        mode=mode,
        speed=speed,
        ping_interval=ping_interval,
        seed=seed,
        replay=payloads,
        control_port=cport,
        callers=callers,
        playback=recorded,
        log=log,
    )
    if rules is not None:
        emulator.core.far_ends = rules
    if emulator.playback is not None:
        emulator.playback.ignored = ignored
    recording = FrameRecorder(record) if _recording(record) else None
    printer = None
    if shown is not FrameFormat.none:
        output = _frame_output(term)
        view = FrameView(term.style(color), **_frame_view_options(term, shown, verbose))
        printer = FramePrinter(view, output)
    recorder = None
    if recording is not None:
        # Written before the frame is printed (or sent), with the printer's numbers: both say the same #N.
        numbers = printer.view.connection_number if printer is not None else ConnectionNumbers()
        recorder = JournalRecorder(recording, numbers)
        emulator.journal.observers.append(recorder.observe)
        emulator.on_close.append(recorder.closed)
    if printer is not None:
        emulator.journal.observers.append(printer.observe)

    def started() -> None:
        term.warn(f"RELAY emulator on {emulator.url} (control plane on {emulator.control_url})")
        if ca is not None:
            _say_app_settings(term, ca, created, emulator.url)

    try:
        code = run_serve(emulator, term.status, started=started, printer=printer, recorder=recorder)
    finally:
        if recording is not None:
            recording.close()
        if printer is not None:
            printer.close()
    if recorder is not None and recorder.error is not None:
        raise recorder.error
    if emulator.playback is not None:
        term.warn(emulator.playback.summary())
        if strict and emulator.playback.diverged:
            code = ExitCode.FAILURE
    if printer is not None:
        if printer.error is not None:
            raise printer.error
        if printer.hidden:
            term.warn(f"{printer.hidden} frames not shown: stdout was blocked")
    if code:
        raise typer.Exit(code)


MethodOption = Annotated[
    list[str] | None,
    typer.Option(
        "--method",
        "-m",
        help="Show only requests whose method matches this glob (calling.play*), with their results; events count"
        " as signalwire.event; repeatable.",
    ),
]
DirectionOption = Annotated[
    str | None,
    typer.Option("--direction", "-d", help="Only frames app>relay (or app) or relay>app (or relay)."),
]
DEFAULT_LISTEN = "127.0.0.1:8766"
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (what --listen means by every interface)


def _listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT``, as --listen takes it."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or any(c.isspace() or c in "/@" for c in host):
        raise UsageError(f"--listen {value!r}: give HOST:PORT, such as {DEFAULT_LISTEN} (port 0 picks a free one)")
    return host, port


def _loopback(host: str) -> bool:
    from relay_cli.session import is_loopback_url

    return is_loopback_url(f"ws://[{host}]" if ":" in host else f"ws://{host}")


def _certificate_hosts(host: str) -> list[str]:
    """The names an app may dial relay by: the listen address, and this machine's names when it is all of them."""
    if host in _ANY_ADDRESS:
        import socket

        return ["127.0.0.1", "::1", "localhost", socket.gethostname()]
    return [host, "127.0.0.1", "localhost"] if host in ("localhost", "127.0.0.1") else [host]


CaDirOption = Annotated[
    str | None,
    typer.Option(
        "--ca-dir",
        help="Where relay's local CA for wss:// is kept (made on first use; its key is private to you).",
        show_default="relay's config directory, e.g. ~/.config/relay/ca",
    ),
]


def _local_tls(ca_dir: str | None, host: str) -> tuple[LocalCA, ssl.SSLContext, bool]:
    """relay's local CA (made on first use: then the bool is True) and a server context with a certificate it
    signed for ``host``: what ``relay serve --tls`` and ``relay proxy`` show SignalWire's SDKs."""
    from pathlib import Path

    from relay_cli.certs import LocalCA

    ca = LocalCA(Path(ca_dir) if ca_dir else Path(typer.get_app_dir("relay")) / "ca")
    created = ca.ensure()
    return ca, ca.server_context(_certificate_hosts(host)), created


def _say_app_settings(term: Terminal, ca: LocalCA, created: bool, url: str) -> None:
    """The two settings an SDK app needs to dial ``url`` (wss://) trusting relay's CA, as bare lines to copy
    (even with -q)."""
    import shlex
    from urllib.parse import urlsplit

    if created:
        term.warn(f"made a local CA for relay: {ca.cert_path} (trust it only for apps you run through relay)")
    term.warn("run your app with:")
    parts = urlsplit(url)
    address = parts.netloc
    if (parts.hostname or "") in _ANY_ADDRESS:  # every interface: dialled here by a loopback name the cert holds
        address = f"[::1]:{parts.port}" if parts.hostname == "::" else f"127.0.0.1:{parts.port}"
    term.say(f"SIGNALWIRE_SPACE={address}")
    term.say(f"SIGNALWIRE_RELAY_CA_FILE={shlex.quote(str(ca.cert_path))}")


def _same_address(url: str, host: str, port: int) -> bool:
    """Whether ``url`` names the proxy's own listening address: forwarding there would loop forever."""
    from urllib.parse import urlsplit

    from relay_cli.session import is_loopback_url

    parts = urlsplit(url)
    their_port = parts.port or (443 if parts.scheme == "wss" else 80)
    if their_port != port:
        return False
    local = host in _ANY_ADDRESS or _loopback(host)
    return parts.hostname == host or (local and is_loopback_url(url))


@app.command(epilog=EXIT_CODES)
def proxy(
    ctx: typer.Context,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT where apps connect; port 0 picks a free one.")
    ] = DEFAULT_LISTEN,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            envvar="SIGNALWIRE_SPACE",
            help="Forward to wss://SPACE, e.g. example.signalwire.com.",
            show_default="relay.signalwire.com",
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help="Forward to this ws:// (loopback only, such as a relay serve) or wss:// URL instead of the space.",
        ),
    ] = None,
    upstream_ca_file: Annotated[
        str | None,
        typer.Option("--upstream-ca-file", help="CA bundle to trust for a wss:// upstream (default: the system's)."),
    ] = None,
    ca_dir: CaDirOption = None,
    plain: Annotated[
        bool,
        typer.Option("--plain", help="Listen with ws:// instead of wss:// (loopback only), for clients that dial it."),
    ] = False,
    types: TypeOption = None,
    exclude: ExcludeOption = None,
    call_id: CallIdOption = None,
    where: WhereOption = None,
    method: MethodOption = None,
    direction: DirectionOption = None,
    fmt: FrameFormatOption = None,
    verbose: FrameVerboseOption = False,
    record: Annotated[
        str | None,
        typer.Option("--record", help='Append every frame, both ways, to this JSONL file (a frame and its "_relay").'),
    ] = None,
    color: ColorOption = Color.auto,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="On stderr only the start lines, warnings and errors: no connections, no summary."
        ),
    ] = False,
) -> None:
    """Sit between an app and RELAY: forward its session unchanged, both ways, and show every frame.

    The app needs no code change: point SIGNALWIRE_SPACE at the proxy and SIGNALWIRE_RELAY_CA_FILE at relay's
    local CA (the proxy prints both lines to copy). Requests show their latency, events the app's ACK latency;
    the filters of relay tail apply. Ctrl-C stops it with a summary on stderr.

    Examples:
      relay proxy                                         # to wss://$SIGNALWIRE_SPACE (or relay.signalwire.com)
      relay proxy --upstream ws://127.0.0.1:8765          # to a local relay serve
      relay proxy -m 'calling.*' --record app.jsonl       # call-control requests only; every frame recorded
    """
    import ssl

    from relay_cli.pipeline.recording import FrameRecorder
    from relay_cli.protocol import display_url
    from relay_cli.proxy import Proxy
    from relay_cli.run import ProxyWatch, run_proxy

    term = _terminal(ctx, quiet=quiet)
    host, port = _listen_address(listen)
    if upstream is not None and _source(ctx, "space") == "COMMANDLINE":
        raise UsageError("--upstream and --space cannot be used together: --upstream names the endpoint itself")
    target = _endpoint(ctx, upstream, None if upstream else space, url_option="upstream")
    if _same_address(target, host, port):
        given = _spelled(ctx, "space", space) if upstream is None else f"--upstream {upstream}"
        raise UsageError(f"{given} is the proxy's own address ({listen}): it would forward to itself")
    if plain:
        if not _loopback(host):
            raise UsageError(f"--plain listens without TLS: only on a loopback address, not {host}")
        if ca_dir is not None:
            raise UsageError("--ca-dir is for TLS toward the app: --plain listens without it")
    upstream_tls = None
    if upstream_ca_file is not None:
        if not target.startswith("wss:"):
            raise UsageError(f"--upstream-ca-file is for a wss:// upstream, not {target}")
        try:
            upstream_tls = ssl.create_default_context(cafile=upstream_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--upstream-ca-file {upstream_ca_file}: cannot load: {exc}") from None
    accept = _frame_filter(term, types, exclude, call_id, where, method, direction)
    shown = _frame_format(term, fmt, quiet=False, verbose=verbose)
    ca = None
    tls = None
    created = False
    if not plain:
        ca, tls, created = _local_tls(ca_dir, host)
    recorder = FrameRecorder(record) if _recording(record) else None
    output = None
    if shown is not FrameFormat.none:
        output = _frame_output(term)
    view = _proxy_view(term, color, accept, shown, verbose)
    watch = ProxyWatch(view, output, recorder, term.status, term.warn)
    server = Proxy(
        target,
        host=host,
        port=port,
        ssl=tls,
        upstream_ssl=upstream_tls,
        on_frame=watch.frame,
        on_link=watch.link,
    )

    def started() -> None:
        term.warn(f"proxy on {server.url} → {display_url(target)}")
        if ca is None:
            term.warn(f"point a client that takes a URL at {server.url}: SignalWire's SDKs dial wss:// only")
            return
        _say_app_settings(term, ca, created, server.url)

    try:
        code = run_proxy(server, watch, started=started)
    finally:
        watch.close()
        if recorder is not None:
            recorder.close()
    for line in view.stats.lines():
        term.status(line)
    if watch.hidden:
        term.warn(f"{watch.hidden} frame lines not shown: stdout was blocked")
    if watch.error is not None:
        raise watch.error
    if code:
        raise typer.Exit(code)


ControlOption = Annotated[
    str,
    typer.Option(
        "--control",
        envvar="RELAY_CONTROL",
        help="The control plane of the relay serve to ask (its start line prints it).",
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="Follow it to its end on stderr; exit 0 when it went through, 1 when it failed."),
]
DEFAULT_CONTROL = "http://127.0.0.1:9765"
"""relay serve's control plane at its defaults: port 8765 + 1000."""


def _script_value(option: str, field: str, value: Any) -> None:
    """Check one field of a caller's script as the far-end rules do (one copy of what is allowed)."""
    from relay_cli.emulator.farends import FarEndError, parse_far_end

    try:
        parse_far_end({field: value}, field)
    except FarEndError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise UsageError(f"{option} {value!r}: {reason}") from None


@app.command(epilog=EXIT_CODES)
def call(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="The number called (the app's number).", show_default=False)],
    from_: Annotated[
        str | None, typer.Option("--from", help="The caller's number.", show_default="relay serve's choice")
    ] = None,
    context: Annotated[str, typer.Option("--context", "-c", help="The context the call arrives on.")] = "default",
    press: Annotated[
        str | None, typer.Option("--press", help="Digits the caller presses when prompted: 0-9, *, #, A-D.")
    ] = None,
    say: Annotated[str | None, typer.Option("--say", help="What the caller says when prompted for speech.")] = None,
    hangup_after: Annotated[
        float | None, typer.Option("--hangup-after", min=0, help="The caller hangs up S seconds after the answer.")
    ] = None,
    machine: Annotated[bool, typer.Option("--machine", help="The caller is an answering machine.")] = False,
    fax: Annotated[bool, typer.Option("--fax", help="The caller is a fax machine (receive_fax gets its fax).")] = False,
    control: ControlOption = DEFAULT_CONTROL,
    wait: WaitOption = False,
) -> None:
    """Place an inbound call on a running relay serve, from a far end with this script; print its id.

    Like stripe trigger: the call arrives at the app receiving on the context, from a caller who presses,
    says and hangs up as told. With --wait, its states follow on stderr until it ends.

    Examples:
      relay call --to +15550002222 --press 1#              # press 1 and # when the app asks for digits
      relay call --to +15550002222 --say "billing" --hangup-after 30 --wait
    """
    from relay_cli.run import ControlPlane, follow_call

    term = _terminal(ctx)
    body: dict[str, Any] = {"to_number": to, "context": context}
    if from_ is not None:
        body["from_number"] = from_
    for option, field, value in (("--press", "press", press), ("--say", "say", say)):
        if value is not None:
            _script_value(option, field, value)
            body[field] = value
    if hangup_after is not None:
        body["hangup_after"] = hangup_after
    if machine:
        body["machine"] = True
    if fax:
        body["fax"] = True
    plane = ControlPlane(_control_url(ctx, control))
    placed = plane.post("/relay/calls", body, what="the call")
    call_id = placed.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise RelayError(f"{plane.url} answered without a call_id: is it relay serve's control plane?")
    term.stdout.write(f"{escape(call_id)}\n".encode())
    term.stdout.flush()
    if placed.get("sent_to") == []:
        term.warn(f"no app receives on context {context!r}: the call rings out unanswered")
    if wait:
        _waiting(lambda: follow_call(plane, call_id, term.status))


@app.command(epilog=EXIT_CODES)
def message(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="The number messaged (the app's number).", show_default=False)],
    from_: Annotated[str, typer.Option("--from", help="The sender's number.", show_default=False)],
    body: Annotated[str, typer.Option("--body", help="The text of the message.", show_default=False)],
    context: Annotated[str, typer.Option("--context", "-c", help="The context the message arrives on.")] = "default",
    control: ControlOption = DEFAULT_CONTROL,
    wait: WaitOption = False,
) -> None:
    """Send an inbound message to the app of a running relay serve, from a far end; print its id.

    Examples:
      relay message --to +15550002222 --from +15550001111 --body "STOP"
      relay message --to +15550002222 --from +15550001111 --body hi -c office --wait
    """
    from relay_cli.run import ControlPlane, follow_message

    term = _terminal(ctx)
    plane = ControlPlane(_control_url(ctx, control))
    sent = plane.post(
        "/relay/messages",
        {"to_number": to, "from_number": from_, "body": body, "context": context},
        what="the message",
    )
    message_id = sent.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise RelayError(f"{plane.url} answered without a message_id: is it relay serve's control plane?")
    term.stdout.write(f"{escape(message_id)}\n".encode())
    term.stdout.flush()
    if wait:
        _waiting(lambda: follow_message(plane, message_id, term.status))


def _control_url(ctx: typer.Context, url: str) -> str:
    """The control plane's base URL, checked: http(s)://host[:port][/prefix], without a trailing slash."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as exc:
        raise UsageError(f"{_spelled(ctx, 'control', url)}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"{_spelled(ctx, 'control', url)}: must be an http:// URL, such as {DEFAULT_CONTROL}")
    return url.rstrip("/")


def _waiting(follow: Callable[[], bool]) -> None:
    """Run a --wait to its end: exit 0 when it went through, 1 when it failed, 130 on Ctrl-C."""
    try:
        ok = follow()
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if not ok:
        raise typer.Exit(ExitCode.FAILURE)


@app.command(epilog=EXIT_CODES)
def replay(
    ctx: typer.Context,
    logs: LogsArgument = None,
    types: TypeOption = None,
    exclude: ExcludeOption = None,
    call_id: CallIdOption = None,
    where: WhereOption = None,
    fmt: FormatOption = None,
    verbose: VerboseOption = False,
    speed: Annotated[
        float | None,
        typer.Option("--speed", min=0.001, help="Keep the recorded gaps, SPEED times faster (1: real time)."),
    ] = None,
    max_gap: Annotated[
        float, typer.Option("--max-gap", min=0, help="With --speed: cut gaps longer than this many seconds.")
    ] = 2.0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep reading as the recording grows, like tail -f.")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option("--count", "-n", min=1, help="Stop after showing N events (with --frames: N frame lines)."),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", "-s", help="At the end, on stderr: events, calls, durations, messages, time span."),
    ] = False,
    by_call: Annotated[
        bool, typer.Option("--by-call", help="One block per call and message instead of one line per event.")
    ] = False,
    color: ColorOption = Color.auto,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes that decode a big recording (default: one per CPU, at most 8); 1 for none.",
        ),
    ] = None,
    frames: Annotated[
        bool,
        typer.Option(
            "--frames",
            help="A two-way recording (relay proxy or serve --record): every frame both ways, as relay proxy shows"
            " them; -v adds ACKs and pings.",
        ),
    ] = False,
    method: MethodOption = None,
    direction: DirectionOption = None,
) -> None:
    """Replay recordings through the same filters and views as tail: as fast as possible, or paced.

    Bad lines are reported as FILE:LINE: message on stderr and skipped; a truncated last line (a
    recorder killed mid-write) is only a warning.

    Examples:
      relay replay office.jsonl                           # as relay tail showed it, at full speed
      relay replay office.jsonl --speed 10 -t 'messaging.*'   # messages only, ten times real time
      relay replay app.jsonl --frames -m 'calling.*'      # a proxy's recording: requests, results, latencies
    """
    term = _terminal(ctx)
    if frames:
        for name in ("by_call", "jobs"):
            if _source(ctx, name) == "COMMANDLINE":
                raise UsageError(f"--frames shows frames one by one: --{name.replace('_', '-')} does not go with it")
        _replay_frames(
            term,
            logs,
            _frame_filter(term, types, exclude, call_id, where, method, direction),
            fmt=fmt,
            verbose=verbose,
            pacer=Pacer(speed, max_gap) if speed else None,
            follow=follow,
            count=count,
            summary=summary,
            color=color,
        )
        return
    for name in ("method", "direction"):
        if _source(ctx, name) == "COMMANDLINE":
            raise UsageError(f"--{name} selects frames: it goes with --frames (a two-way recording)")
    _replay(
        term,
        logs,
        types=types,
        exclude=exclude,
        call_id=call_id,
        where=where,
        fmt=fmt,
        verbose=verbose,
        speed=speed,
        max_gap=max_gap,
        follow=follow,
        count=count,
        summary=summary,
        by_call=by_call,
        color=color,
        jobs=jobs,
    )


@app.command(epilog=EXIT_CODES)
def calls(
    ctx: typer.Context,
    logs: LogsArgument = None,
    call_id: CallIdOption = None,
    types: TypeOption = None,
    exclude: ExcludeOption = None,
    where: WhereOption = None,
    summary: Annotated[bool, typer.Option("--summary", "-s", help="Also print the summary on stderr.")] = False,
    color: ColorOption = Color.auto,
) -> None:
    """One block per call (and per message) of a recording: its legs, numbers and what happened when.

    Times are relative to the call's first event; calls with no end state and events out of lifecycle
    order are flagged. The same as relay replay --by-call.

    Examples:
      relay calls office.jsonl                            # every call and message, one block each
      relay calls office.jsonl --call-id 8d19 -s          # one call, then the summary
    """
    _replay(
        _terminal(ctx),
        logs,
        types=types,
        exclude=exclude,
        call_id=call_id,
        where=where,
        fmt=None,
        verbose=False,
        speed=None,
        max_gap=0.0,
        follow=False,
        count=None,
        summary=summary,
        by_call=True,
        color=color,
        jobs=1,
        command="calls",
    )


def _replay(
    term: Terminal,
    logs: list[str] | None,
    *,
    types: list[str] | None,
    exclude: list[str] | None,
    call_id: list[str] | None,
    where: list[str] | None,
    fmt: Format | None,
    verbose: bool,
    speed: float | None,
    max_gap: float,
    follow: bool,
    count: int | None,
    summary: bool,
    by_call: bool,
    color: Color,
    jobs: int | None,
    command: str = "replay",
) -> None:
    logs = _recordings(term, logs, follow, command)
    if by_call and (fmt is not None or verbose):
        flag = "--verbose" if verbose else f"--format {fmt}"
        raise UsageError(f"--by-call and {flag} cannot be used together: --by-call prints call blocks")
    _check_verbose(term, verbose, fmt)
    style = term.style(color)
    tracker = None
    # The tracker judges each call's lifecycle on all of its events: the filters (--call-id too) choose which
    # calls to show, a call being shown when the filter took one of its events (a peer leg names its parent).
    accept = _filter(term, types, exclude, call_id, where)
    if by_call:
        from relay_cli.views.timeline import CallTracker

        tracker = CallTracker(style=style, accept=accept)
        accept = None
    fmt = term.default_format(fmt)
    printer = make_printer(fmt, style, verbose, width=terminal_width(term.stdout_tty), terminal=term.stdout_tty)
    if tracker is not None:
        printer = tracker.feed_bytes
    totals = None
    if summary:
        from relay_cli.views.summary import Summary

        totals = Summary()
    pipeline = Pipeline(
        out=term.stdout,
        printer=printer,
        accept=accept,
        count=count,
        flush=follow or speed is not None,
        observe=totals.feed if totals is not None else None,
        # A call tracker, the pretty line (colours per call) and a --call-id filter (the ids a prefix claimed)
        # keep state from one event to the next: worker processes would each keep their own.
        stateless=tracker is None and fmt is not Format.pretty and not call_id,
    )
    pacer = Pacer(speed, max_gap) if speed else None
    interrupted = stopped = refused = False
    with _progress(term, logs, enabled=not follow) as progress:
        try:
            stats = replay_logs(
                logs, pipeline, problem=term.problem, pacer=pacer, follow=follow, progress=progress, jobs=jobs
            )
        except AmbiguousCallId:  # found on the way: the held call blocks are not the answer
            refused = True
            raise
        except KeyboardInterrupt:
            interrupted = True
        except Terminated:  # SIGTERM while worker processes run (see relay_cli.pipeline.workers)
            stopped = True
            raise
        finally:
            if (interrupted or stopped) and not _regular_file(term.stdout):
                _abandon_output(term.stdout)
            else:
                with contextlib.suppress(BrokenPipeError):
                    pipeline.drain()
                    if tracker is not None and not (interrupted or refused):
                        term.stdout.write(tracker.finish().encode())
                        term.stdout.flush()
    if totals is not None:
        if not interrupted:
            totals.malformed(stats.bad)
        for line in totals.lines():
            term.status(line)
    if interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)
    if stats.bad:
        term.status(f"{stats.bad} bad line{'s' if stats.bad != 1 else ''} skipped")
        raise typer.Exit(ExitCode.FAILURE)


def _recordings(term: Terminal, logs: list[str] | None, follow: bool, command: str) -> list[str]:
    """The recordings to read, stdin when none is given (and it is not a terminal), checked as a replay needs."""
    if not logs:
        if term.stdin_tty:
            raise UsageError(f"no input: give a FILE, or pipe JSON into stdin (relay {command} --help)")
        logs = [STDIN]
    if follow and len(logs) > 1:
        raise UsageError("--follow reads one recording at a time")
    if logs.count(STDIN) > 1:
        raise UsageError("stdin (-) can be read only once")
    return logs


def _replay_frames(
    term: Terminal,
    logs: list[str] | None,
    accept: FrameFilter,
    *,
    fmt: Format | None,
    verbose: bool,
    pacer: Pacer | None,
    follow: bool,
    count: int | None,
    summary: bool,
    color: Color,
) -> None:
    """``relay replay --frames``: a two-way recording's frames through relay proxy's view, in recorded order."""
    from relay_cli.pipeline.reader import BadLine, RecordedClose, recorded_frames
    from relay_cli.views.proxy import LinkInfo

    logs = _recordings(term, logs, follow, "replay")
    if fmt is not None and fmt.value not in FrameFormat.__members__:
        raise UsageError(f"--frames shows frames as pretty lines or JSON records (or none), not --format {fmt}")
    shown = _frame_format(term, FrameFormat(fmt.value) if fmt else None, quiet=False, verbose=verbose)
    view = _proxy_view(term, color, accept, shown, verbose)
    bad = others = records = lines = 0
    out: list[bytes] = []
    live = follow or pacer is not None

    def write(data: bytes) -> None:
        nonlocal lines
        if data and shown is not FrameFormat.none:
            out.append(data)
            lines += data.count(b"\n")
        if out and (live or len(out) >= 512):
            term.stdout.write(b"".join(out))
            term.stdout.flush()
            out.clear()

    interrupted = False
    try:
        for path in logs:
            for at_line, record in recorded_frames(Source(path), follow=follow):
                if record is None:
                    others += 1
                    continue
                if isinstance(record, RecordedClose):
                    write(view.tick(record.at))
                    write(view.link(LinkInfo(record.connection, "closed", record.at, record.code, record.reason)))
                    if count is not None and shown is not FrameFormat.none and lines >= count:
                        break
                    continue
                if not isinstance(record, tuple):
                    bad += isinstance(record, BadLine) and not record.truncated
                    term.problem(at_line, record.message)
                    continue
                records += 1
                direction, at, connection, raw, text = record
                write(view.tick(at))
                if pacer is not None:
                    pacer.wait_for(at)
                write(view.frame(direction, at, connection, raw, text))
                if view.error is not None:
                    raise view.error
                if count is not None and (records if shown is FrameFormat.none else lines) >= count:
                    break
            else:
                continue
            break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with contextlib.suppress(BrokenPipeError):
            write(view.finish())  # lines held for an ACK, also after Ctrl-C (--follow waits for more)
            term.stdout.write(b"".join(out))
            term.stdout.flush()
    if summary:
        for text_line in view.stats.lines():
            term.status(text_line)
    if others:
        term.warn(
            f'{others} line{"s" if others != 1 else ""} without a frame record ("_relay") left out: --frames reads'
            " two-way recordings, from relay proxy --record or relay serve --record"
        )
    if interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)
    if bad or not records:
        if not records and not bad:
            term.warn("no frame records found")
        raise typer.Exit(ExitCode.FAILURE)


def _regular_file(stream: IO[bytes]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _abandon_output(stream: IO[bytes]) -> None:
    """After Ctrl-C or SIGTERM, drop what is not written yet: a pipe or terminal nobody reads must not hold the
    exit up. Pointing the descriptor at /dev/null also keeps the interpreter's own flush at exit from blocking."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


@contextlib.contextmanager
def _progress(term: Terminal, logs: list[str], *, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr, when stderr is a terminal and stdout is not (it would garble the output)."""
    sizes = [os.path.getsize(p) for p in logs if p != STDIN and os.path.isfile(p)]
    if not enabled or not term.stderr_tty or term.stdout_tty or len(sizes) != len(logs):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("replay", total=sum(sizes))
        yield lambda done: bar.update(task, completed=done)


def main() -> None:
    """The console script: run the app with the documented exit codes. Around the commands too, nothing becomes a
    traceback: a standard stream the caller closed (``>&-``) is /dev/null, an absurd ``COLUMNS`` is capped, and a
    stdout that cannot be written (a full disk) is one line and exit 1."""
    import sys

    _standard_streams()
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > _MAX_COLUMNS:  # rich and click would build lines that wide
        os.environ["COLUMNS"] = str(_MAX_COLUMNS)
    try:
        app(prog_name="relay")
    except OSError as exc:  # from help or a command's output: click passes on all but a closed pipe
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more can be written there, at exit either
        where = f"{exc.filename}" if exc.filename else "stdout"
        sys.stderr.write(f"relay: cannot write to {where}: {exc.strerror or exc}\n")
        raise SystemExit(ExitCode.FAILURE) from None


_MAX_COLUMNS = 1000


def _standard_streams() -> None:
    """Give a standard stream the caller closed (``relay ... >&-``, ``<&-``) /dev/null in its place: read, it is
    empty; written, the output goes nowhere, as to a reader that left."""
    import sys

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the process's own, never closed
