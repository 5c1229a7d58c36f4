"""The ``relay`` command line: options, environment variables and exit codes, wired to the library.

Each command connects a source to the shared sinks; the work lives in the modules below this one.
Errors a user can cause become one line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer

from relay_cli import __version__
from relay_cli.event import EVENT_CLASS_MAP, InvalidEvent, parse_event
from relay_cli.filters import EventFilter, FilterError
from relay_cli.output import Color, ExitCode, Terminal
from relay_cli.pipeline import Pipeline, without_gc
from relay_cli.reader import STDIN, BadLine, InputError, Source, entries, to_event, where
from relay_cli.recording import Recorder, RecordingError
from relay_cli.render import Format, Style, escape, event_json, make_printer, pretty_block
from relay_cli.replay import Pacer
from relay_cli.replay import replay as replay_logs

__all__ = ["app", "main"]

EXIT_CODES = (
    "Exit codes: 0 ok, 1 runtime failure (connection, authentication, bad input found), 2 usage error, "
    "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."
)

app = typer.Typer(
    name="relay",
    help=f"See what a SignalWire RELAY account is doing: live, from a recording, or from one payload.\n\n{EXIT_CODES}",
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
        help="pretty, json (payloads), frame, typed, or none [default: pretty on a terminal, json when piped].",
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
    file: Annotated[
        str | None,
        typer.Argument(help="A JSON, JSON array or JSON Lines file; - or nothing for stdin.", show_default=False),
    ] = None,
    fmt: Annotated[
        ParseFormat | None,
        typer.Option(
            "--format", "-o", help="pretty: a table per event; json: typed JSON lines. [default: pretty on a terminal]"
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Also fail on event types relay does not know.")] = False,
    color: ColorOption = Color.auto,
) -> None:
    """Show what a payload or frame is, typed: one entry per event.

    Takes bare event payloads or whole signalwire.event frames; other JSON-RPC frames are named for
    what they are. Problems are reported as FILE:LINE: message on stderr.
    """
    term = Terminal()
    if file is None and term.stdin_tty:
        term.status("no input: give a FILE, or pipe JSON into stdin (relay parse --help)")
        raise typer.Exit(ExitCode.USAGE)
    pretty = fmt is ParseFormat.pretty or (fmt is None and term.stdout_tty)
    try:
        with without_gc():
            failed = _parse(term, Source(file or STDIN), pretty, term.style(color), strict)
    except InputError as exc:
        raise _fail(term, str(exc)) from None
    except BrokenPipeError:
        raise typer.Exit(ExitCode.OK) from None
    if failed:
        raise typer.Exit(ExitCode.FAILURE)


def _parse(term: Terminal, source: Source, pretty: bool, style: Style, strict: bool) -> bool:
    """Print every entry of ``source``; report the bad ones; say whether any failed."""
    out: list[bytes] = []
    failed = False
    try:
        for line, raw, value in entries(source):
            if isinstance(value, BadLine):
                term.problem(where(source, line), value.message)
                failed = True
                continue
            try:
                payload, note = to_event(value)
                if note is not None:
                    if pretty:
                        label = escape(where(source, line))
                        out.append(f"{style.dim}{label}{style.reset}  {escape(note)}\n\n".encode())
                    else:
                        term.problem(where(source, line), f"not an event: {note}")
                    continue
                event = parse_event(payload)
            except InvalidEvent as exc:
                term.problem(where(source, line), str(exc))
                failed = True
                continue
            if strict and event.event_type not in EVENT_CLASS_MAP:
                term.problem(where(source, line), f"unknown event type {event.event_type!r}")
                failed = True
            if pretty:
                out.append((pretty_block(event, style) + "\n").encode())
            else:
                out.append(orjson.dumps(event_json(event, raw if payload is value else None)) + b"\n")
            if len(out) >= 512:
                term.stdout.write(b"".join(out))
                out.clear()
    finally:
        term.stdout.write(b"".join(out))
        term.stdout.flush()
    return failed


def _fail(term: Terminal, message: str, code: ExitCode = ExitCode.FAILURE) -> typer.Exit:
    term.status(message)
    return typer.Exit(code)


TypeOption = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", help="Show only event types matching this glob (calling.call.*); repeatable."),
]
ExcludeOption = Annotated[
    list[str] | None, typer.Option("--exclude", "-x", help="Hide event types matching this glob; repeatable.")
]
CallIdOption = Annotated[
    str | None,
    typer.Option("--call-id", help="Only events of this call (a unique prefix is enough), dials and peers included."),
]
WhereOption = Annotated[
    list[str] | None,
    typer.Option("--where", "-w", help="PATH=VALUE, PATH!=VALUE or PATH~REGEX on the payload; repeatable, all hold."),
]
LogsArgument = Annotated[
    list[str], typer.Argument(help="Recordings (JSON Lines, a JSON array or object); - for stdin.", show_default=False)
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="pretty: add the typed fields under each line.")]


def _filter(
    term: Terminal, types: list[str] | None, exclude: list[str] | None, call_id: str | None, where: list[str] | None
) -> Callable[[dict[str, Any]], bool] | None:
    """The shared filter, or None when nothing filters (the pipeline then skips the call)."""

    def ambiguous(prefix: str, ids: list[str]) -> None:
        term.status(f"--call-id {prefix} is ambiguous: it matches {', '.join(ids)}")

    try:
        flt = EventFilter(
            types=types or (), exclude=exclude or (), call_id=call_id, where=where or (), on_ambiguous=ambiguous
        )
    except FilterError as exc:
        raise _fail(term, str(exc), ExitCode.USAGE) from None
    return flt.predicate if flt.active else None


@app.command(epilog=EXIT_CODES)
def tail(
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
        bool, typer.Option("--demo", help="Tail a built-in RELAY emulator: no account, no network.")
    ] = False,
    rate: Annotated[float, typer.Option("--rate", min=0, help="With --demo: demo events per second.")] = 5.0,
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
) -> None:
    """Watch a RELAY session live: connect, ACK and show every event, optionally recording them.

    Status lines and the closing summary go to stderr; stdout carries events only.
    """
    import ssl  # here, as the live modules are: at the top it would slow every command's start-up

    from relay_cli.live import Demo, run_tail
    from relay_cli.session import Credentials, RelaySession, SessionConfig, SessionError, endpoint_url

    term = Terminal()
    contexts = list(context or (["default"] if demo else []))
    credentials = Credentials(project=project, token=token, jwt=jwt)
    if not demo:
        if not jwt and not project:
            raise _fail(
                term, "missing project: pass --project or set SIGNALWIRE_PROJECT_ID (or use --jwt)", ExitCode.USAGE
            )
        if not jwt and not token:
            raise _fail(term, "missing token: pass --token or set SIGNALWIRE_API_TOKEN (or use --jwt)", ExitCode.USAGE)
    try:
        endpoint = endpoint_url(url=url, host=space) if not demo else "ws://127.0.0.1"
        tls = ssl.create_default_context(cafile=ca_file) if ca_file else None
    except SessionError as exc:
        raise _fail(term, str(exc), ExitCode.USAGE) from None
    except (OSError, ssl.SSLError) as exc:
        raise _fail(term, f"--ca-file {ca_file}: cannot load: {exc}", ExitCode.USAGE) from None
    accept = _filter(term, types, exclude, call_id, where)
    if not contexts:
        term.status("no --context given: inbound calls and messages will not arrive, only events of calls you make")
    recorder = None
    if record:
        try:
            recorder = Recorder(record)
        except RecordingError as exc:
            raise _fail(term, str(exc)) from None
    fmt = term.default_format(fmt)
    pipeline = Pipeline(
        out=term.stdout,
        printer=make_printer(fmt, term.style(color), verbose),
        accept=accept,
        recorder=recorder,
        count=count,
        flush=True,
    )
    config = SessionConfig(url=endpoint, credentials=credentials, contexts=contexts, ssl=tls)
    session = RelaySession(config, status=term.status, problem=term.status)
    try:
        result = run_tail(session, pipeline, timeout=timeout, demo=Demo(rate=rate) if demo else None)
    except RecordingError as exc:
        raise _fail(term, str(exc)) from None
    except BrokenPipeError:
        raise typer.Exit(ExitCode.OK) from None
    finally:
        if recorder is not None:
            recorder.close()
    if result.error:
        term.status(result.error)
    stats = session.stats
    extra = {"reconnects": stats.reconnects, "malformed frames": stats.malformed}
    if stats.duplicates:
        extra["redelivered duplicates hidden"] = stats.duplicates
    for line in pipeline.tally.summary(**extra):
        term.status(line)
    if result.code:
        raise typer.Exit(result.code)


@app.command(epilog=EXIT_CODES)
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")] = 8765,
    project: Annotated[
        str | None, typer.Option("--project", help="Accept only this project id (default: any non-empty).")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Accept only this token (default: any non-empty).", show_default=False)
    ] = None,
    certfile: Annotated[str | None, typer.Option("--certfile", help="TLS certificate (PEM): serve wss://.")] = None,
    keyfile: Annotated[str | None, typer.Option("--keyfile", help="TLS private key (PEM) for --certfile.")] = None,
    rate: Annotated[float, typer.Option("--rate", min=0, help="Demo events per second per session; 0: unpaced.")] = 5.0,
    events: Annotated[
        int | None, typer.Option("--events", min=0, help="Stop demo traffic after N events per session.")
    ] = None,
    ping_interval: Annotated[
        float, typer.Option("--ping-interval", min=0, help="Seconds between server pings; 0: never.")
    ] = 20.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for reproducible demo traffic.")] = None,
    replay: Annotated[
        str | None, typer.Option("--replay", help="Send the events of this recording instead of demo traffic.")
    ] = None,
) -> None:
    """Run a local RELAY emulator: real protocol, demo call and message traffic, no account needed."""
    import ssl

    from relay_cli.emulator import Emulator
    from relay_cli.live import run_serve

    term = Terminal()
    tls = None
    if certfile or keyfile:
        if not (certfile and keyfile):
            raise _fail(term, "--certfile and --keyfile go together", ExitCode.USAGE)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise _fail(term, f"cannot load --certfile/--keyfile: {exc}", ExitCode.USAGE) from None
    payloads = None
    if replay:
        payloads = _load_recording(term, replay)
    emulator = Emulator(
        host=host,
        port=port,
        ssl=tls,
        project=project,
        token=token,
        rate=rate,
        events=events,
        ping_interval=ping_interval,
        seed=seed,
        replay=payloads,
        log=term.status,
    )
    result = run_serve(emulator, term.status)
    if result.error:
        term.status(result.error)
    if result.code:
        raise typer.Exit(result.code)


@app.command(epilog=EXIT_CODES)
def replay(
    logs: LogsArgument,
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
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Stop after showing N events.")] = None,
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
) -> None:
    """Replay recordings through the same filters and views as tail: as fast as possible, or paced.

    Bad lines are reported as FILE:LINE: message on stderr and skipped; a truncated last line (a
    recorder killed mid-write) is only a warning.
    """
    _replay(
        Terminal(),
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
    logs: LogsArgument,
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
    """
    _replay(
        Terminal(),
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
    )


def _replay(
    term: Terminal,
    logs: list[str],
    *,
    types: list[str] | None,
    exclude: list[str] | None,
    call_id: str | None,
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
) -> None:
    if follow and len(logs) > 1:
        raise _fail(term, "--follow reads one recording at a time", ExitCode.USAGE)
    if logs.count(STDIN) > 1:
        raise _fail(term, "stdin (-) can be read only once", ExitCode.USAGE)
    style = term.style(color)
    tracker = None
    if by_call:
        from relay_cli.calls import CallTracker

        tracker = CallTracker(style=style, call_id=call_id)
    # Calls are narrowed by the tracker, which also keeps the peer legs of the chosen call.
    accept = _filter(term, types, exclude, None if by_call else call_id, where)
    fmt = term.default_format(fmt)
    printer = make_printer(fmt, style, verbose)
    if tracker is not None:
        printer = tracker.feed_bytes
    totals = None
    if summary:
        from relay_cli.summary import Summary

        totals = Summary()
    pipeline = Pipeline(
        out=term.stdout,
        printer=printer,
        accept=accept,
        count=count,
        flush=follow or speed is not None,
        observe=totals.feed if totals is not None else None,
    )
    pacer = Pacer(speed, max_gap) if speed else None
    # Workers share no state: only a filter and printer that keep none between events can be split.
    if tracker is not None or totals is not None or count is not None or call_id is not None or fmt is Format.pretty:
        jobs = 1
    elif jobs is None:
        jobs = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    interrupted = False
    with _progress(term, logs, enabled=not follow) as progress:
        try:
            stats = replay_logs(
                logs, pipeline, problem=term.problem, pacer=pacer, follow=follow, progress=progress, jobs=jobs
            )
        except InputError as exc:
            raise _fail(term, str(exc)) from None
        except BrokenPipeError:
            raise typer.Exit(ExitCode.OK) from None
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with contextlib.suppress(BrokenPipeError):
                pipeline.drain()
                if tracker is not None and not interrupted:
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


def _load_recording(term: Terminal, path: str) -> list[dict[str, Any]]:
    payloads: list[dict[str, Any]] = []
    try:
        source = Source(path)
        for line, _, value in entries(source):
            if isinstance(value, BadLine):
                term.problem(where(source, line), value.message)
                continue
            payload, note = to_event(value)
            if note is None and isinstance(payload, dict):
                payloads.append(payload)
    except (InputError, InvalidEvent) as exc:
        raise _fail(term, str(exc)) from None
    if not payloads:
        raise _fail(term, f"{path}: no events to replay")
    return payloads


def main() -> None:
    """The console script: run the app with the documented exit codes."""
    app(prog_name="relay")
