"""The layers of relay_cli import only what the table below allows, lazy imports included.

The table is the architecture in one place: the core at the top knows nothing of I/O, the event path and the
views are pure, the network roles add sockets and event loops, and only the process edge touches typer,
signals, the standard streams and the exit code. Type-only imports (``if TYPE_CHECKING:``) do not count: they
couple nothing at run time.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "relay_cli"

CORE = ("relay_cli.__init__", "relay_cli.errors", "relay_cli.event", "relay_cli.lifecycles", "relay_cli.protocol")
PIPELINE = ("relay_cli.pipeline",)
VIEWS = ("relay_cli.views",)
EMULATOR_CORE = tuple(
    f"relay_cli.emulator.{m}"
    for m in (
        *("sessions", "methods", "outbox", "journal", "flows", "farends", "media"),
        *("calls", "verbs", "messages", "scenarios", "control", "playback"),
    )
)  # sans-I/O: unit-tested without a socket
NETWORK = ("relay_cli.burst", "relay_cli.session", "relay_cli.proxy", "relay_cli.certs", "relay_cli.emulator")
TESTING = ("relay_cli.testing",)  # the pytest plugin: runs the emulator in a test's process
EDGE = ("relay_cli.cli", "relay_cli.run", "relay_cli.terminal", "relay_cli.outbuf", "relay_cli.__main__")

IO = frozenset({"asyncio", "websockets", "ssl", "socket", "threading", "selectors"})
EDGE_ONLY = frozenset({"typer", "click", "rich", "signal"})


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]
    may_import: tuple[str, ...]
    """relay_cli modules (or packages) this layer may use, beside itself."""
    third_party: frozenset[str]
    """Packages from outside the standard library it may use."""
    forbidden_stdlib: frozenset[str] = frozenset()


LAYERS = (
    Layer("core", CORE, (), frozenset({"orjson"}), IO | EDGE_ONLY),
    # The parse view renders the reader's entries (its BadLine and to_event); the reader reads, the view does not.
    Layer(
        "parse view",
        ("relay_cli.views.parse",),
        (*CORE, *VIEWS, "relay_cli.pipeline.reader"),
        frozenset({"orjson"}),
        IO | EDGE_ONLY,
    ),
    Layer("pipeline", PIPELINE, CORE, frozenset({"orjson"}), IO | EDGE_ONLY),
    Layer("views", VIEWS, CORE, frozenset({"orjson"}), IO | EDGE_ONLY),
    Layer("emulator core", EMULATOR_CORE, CORE, frozenset({"orjson"}), IO | EDGE_ONLY),
    Layer("network", NETWORK, CORE, frozenset({"orjson", "websockets", "h11", "cryptography"}), EDGE_ONLY),
    Layer("edge", EDGE, ("relay_cli",), frozenset({"orjson", "websockets", "typer", "click", "rich"})),
    Layer("testing", TESTING, ("relay_cli",), frozenset({"orjson", "websockets", "pytest", "_pytest"})),
)
EXCEPTIONS = {
    # Worker processes are forked by the replay itself and must ignore the terminal's signals.
    ("relay_cli.pipeline.workers", "signal"),
}


def module_name(path: Path) -> str:
    """The dotted name; the package's own ``__init__`` is ``relay_cli.__init__``, a core module, while a
    subpackage's belongs to the subpackage."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth, but under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            if node.module == "relay_cli":
                found.update(f"relay_cli.{alias.name}" for alias in node.names if alias.name != "__version__")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def layer_of(module: str) -> Layer:
    for layer in LAYERS:
        if any(module == m or module.startswith(m + ".") for m in layer.modules):
            return layer
    raise AssertionError(f"{module} belongs to no layer: add it to the table in {__file__}")


def within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in allowed)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_each_module_imports_only_what_its_layer_allows(path: Path) -> None:
    module = module_name(path)
    layer = layer_of(module)
    wrong = []
    for name in sorted(imports(path)):
        top = name.split(".")[0]
        if (module, top) in EXCEPTIONS:
            continue
        if top == "relay_cli":
            if name != "relay_cli" and not within(name, layer.modules + layer.may_import):
                wrong.append(f"{name} (a {layer_of(name).name} module)")
        elif top in sys.stdlib_module_names:
            if top in layer.forbidden_stdlib:
                wrong.append(f"{name} (I/O or the process edge's)")
        elif top not in layer.third_party:
            wrong.append(f"{name} (third party)")
    assert not wrong, f"{module} ({layer.name}) may not import: {', '.join(wrong)}"


@pytest.mark.parametrize("path", [p for p in MODULES if layer_of(module_name(p)).name != "edge"], ids=module_name)
def test_below_the_edge_nothing_touches_the_standard_streams_or_exits(path: Path) -> None:
    tree = ast.parse(path.read_text())
    touched = {
        f"sys.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        and node.attr in ("stdout", "stderr", "stdin", "exit", "argv")
    }
    assert not touched, f"{module_name(path)} uses {', '.join(sorted(touched))}: that is the process edge's job"


def test_every_module_is_in_the_table() -> None:
    for path in MODULES:
        layer_of(module_name(path))
