"""The ``relay`` command line: options, environment variables and exit codes, wired to the library.

Each command connects a source to the shared sinks; the work lives in the modules below this one.
Errors a user can cause become one line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
import typer

from relay_cli import __version__
from relay_cli.event import EVENT_CLASS_MAP, InvalidEvent, parse_event
from relay_cli.output import Color, ExitCode, Terminal
from relay_cli.reader import STDIN, InputError, Source, entries, to_event
from relay_cli.render import Format, event_json, pretty_block

__all__ = ["app", "main"]

EXIT_CODES = """Exit codes: 0 ok; 1 runtime failure (connection, authentication, bad input found);
2 usage error; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."""

app = typer.Typer(
    name="relay",
    help=f"See what a SignalWire RELAY account is doing: live, from a recording, or from one payload.\n\n{EXIT_CODES}",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ColorOption = Annotated[
    Color,
    typer.Option("--color", help="Colour on stdout: auto (a terminal without NO_COLOR), always or never."),
]
FormatOption = Annotated[
    Format | None,
    typer.Option("--format", "-f", help="Output format [default: pretty on a terminal, json when piped]."),
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
            "--format", "-f", help="pretty: a table per event; json: typed JSON lines. [default: pretty on a terminal]"
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
    style = term.style(color)
    out: list[bytes] = []
    failed = False
    try:
        for entry in entries(Source(file or STDIN)):
            if entry.error is not None:
                term.problem(entry.where, entry.error)
                failed = True
                continue
            try:
                payload, note = to_event(entry.value)
                if note is not None:
                    if pretty:
                        out.append(f"{style.dim}{entry.where}{style.reset}  {note}\n\n".encode())
                    else:
                        term.problem(entry.where, f"not an event: {note}")
                    continue
                event = parse_event(payload)
            except InvalidEvent as exc:
                term.problem(entry.where, str(exc))
                failed = True
                continue
            if strict and event.event_type not in EVENT_CLASS_MAP:
                term.problem(entry.where, f"unknown event type {event.event_type!r}")
                failed = True
            if pretty:
                out.append((pretty_block(event, style) + "\n").encode())
            else:
                out.append(orjson.dumps(event_json(event)) + b"\n")
            if len(out) >= 512:
                term.stdout.write(b"".join(out))
                out.clear()
    except InputError as exc:
        term.status(str(exc))
        raise typer.Exit(ExitCode.FAILURE) from None
    finally:
        term.stdout.write(b"".join(out))
        term.stdout.flush()
    if failed:
        raise typer.Exit(ExitCode.FAILURE)


def main() -> None:
    """The console script: run the app with the documented exit codes."""
    app(prog_name="relay")
