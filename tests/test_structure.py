"""The package's structure, read from its source with ``ast``: no module over 600 lines, no
function over 80, no import cycle, and lower layers that never import higher ones.

Sizes: a module's lines as ``str.splitlines`` counts them; a function's ``end_lineno -
lineno + 1`` (its docstring included, its decorators not). Imports: every ``import geosr...``
and ``from geosr... import`` in a module, at module level, in functions and under ``if
TYPE_CHECKING:`` alike (a cycle of annotations is still two modules that need each other).
``from geosr.pkg import name`` is an edge to ``geosr.pkg.name`` when that is a module, else to
``geosr.pkg``; the implicit import of a parent package is not an edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import geosr

PACKAGE = Path(geosr.__file__).resolve().parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# the layers, lowest first; a prefix ending in "_" or "." matches every module it starts
MODELS = ("geosr.models",)
ENGINE = (
    "geosr.pipeline",
    "geosr.engine",
    "geosr.raster",
    "geosr.raster_",
    "geosr.writer",
    "geosr.sources",
    "geosr.zarr_store",
)
TRAINING = ("geosr.training", "geosr.train")
EVALUATION = ("geosr.evaluate", "geosr.evaluate_", "geosr.evaluation")
FACES = ("geosr.cli", "geosr.accessor", "geosr.__main__")


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The geosr modules one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "geosr"}
    if node.level:  # relative: from the module's package, up level - 1 packages
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "geosr":
        return set()
    return {
        f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
        for alias in node.names
    }


def _import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets: set[str] = set()
        for node in _import_nodes(tree):
            targets |= _imported(module, node)
        graph[module] = {t for t in targets if t in MODULES and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in(module: str, layer: tuple[str, ...]) -> bool:
    return any(
        module.startswith(prefix)
        if prefix.endswith(("_", "."))
        else module == prefix or module.startswith(prefix + ".")
        for prefix in layer
    )


def test_no_module_is_over_600_lines() -> None:
    long = {
        _relative(path): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_80_lines() -> None:
    long = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{_relative(path)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_import_cycles() -> None:
    graph = _import_graph()
    cycles = _cycles(graph)
    described = [
        "; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(cycle)))}" for m in cycle)
        for cycle in cycles
    ]
    assert not cycles, "import cycles: " + " | ".join(described)


def test_lower_layers_never_import_higher_ones() -> None:
    rules = [
        ("models", MODELS, ENGINE + TRAINING + EVALUATION + FACES),
        ("the engine", ENGINE, TRAINING + EVALUATION + FACES),
    ]
    wrong = [
        f"{module} ({what}) imports {target}"
        for module, targets in _import_graph().items()
        for what, layer, above in rules
        if _in(module, layer)
        for target in sorted(targets)
        if _in(target, above)
    ]
    assert not wrong, "layer violations: " + "; ".join(wrong)


def test_the_checks_see_what_they_check() -> None:
    """The graph and the layers are read right: known edges are there, layers are matched."""
    graph = _import_graph()
    assert {"geosr.models", "geosr.safetensors_io"} <= graph["geosr.checkpoint"]
    assert "geosr.training.trainer" not in graph["geosr.training.loop"]  # the circle is gone
    assert _in("geosr.raster_read", ENGINE) and _in("geosr.engine.tiles", ENGINE)
    assert not _in("geosr.rasterize", ENGINE) and not _in("geosr.trainers", TRAINING)
    assert _in("geosr.evaluate_guided", EVALUATION) and _in("geosr.training.loop", TRAINING)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_functions_named_like_their_modules_stay_callable() -> None:
    """``geosr.evaluate(...)`` works whether or not ``geosr.evaluate`` (the module) was
    imported first: importing it rebinds the package attribute to the module."""
    code = (
        "import inspect, geosr, geosr.evaluate, geosr.evaluate_guided\n"
        "from geosr.evaluation import evaluate, evaluate_guided\n"
        "for name, function in (('evaluate', evaluate), ('evaluate_guided', evaluate_guided)):\n"
        "    attribute = getattr(geosr, name)\n"
        "    assert callable(attribute), name\n"
        "    assert inspect.signature(attribute) == inspect.signature(function), name\n"
        "try:\n"
        "    geosr.evaluate([])\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # called as the function: refused for its empty list of scenes, not "not callable"
    assert "not callable" not in result.stdout and result.stdout.strip(), result.stdout
