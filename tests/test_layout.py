"""The package layout keeps its promises: each subpackage imports only the layers below it, there are no import
cycles, ``harness/heist`` never loads torch, the library never imports ``harness.training``, no module grows past
400 lines, and ``from harness import X`` gives the object its module defines."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import harness

PACKAGE = Path(harness.__file__).parent
MAX_LINES = 400
ALLOWED = {  # subpackage -> the subpackages its modules may import (itself included)
    "errors": {"errors"},
    "heist": {"errors", "heist"},
    "policy": {"errors", "heist", "policy"},
    "stats": {"errors", "stats"},
    "lenses": {"errors", "heist", "policy", "stats", "lenses"},
    "claims": {"errors", "heist", "policy", "stats", "lenses", "claims"},
    "training": {"errors", "heist", "policy", "stats", "lenses", "claims", "training"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``, which type checkers read and Python never runs."""
    return {id(node) for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test).endswith(
        "TYPE_CHECKING") for statement in block.body for node in ast.walk(statement)}


def _imports(path: Path) -> set[str]:
    """Every module this file imports when it runs, at top level or inside functions (a lazy import is still a
    dependency)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from harness.x import submodule
    return found


def _harness_imports(path: Path) -> set[str]:
    return {name for name in _imports(path) if name in MODULES and name != "harness"}


def _layer(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize("module", [m for m in MODULES if m != "harness"])
def test_modules_import_only_the_layers_below_them(module):
    wrong = {name for name in _harness_imports(MODULES[module]) if _layer(name) not in ALLOWED[_layer(module)]}
    assert not wrong, f"{module} ({_layer(module)}) imports {sorted(wrong)}; allowed: {sorted(ALLOWED[_layer(module)])}"


def test_no_import_cycles():
    graph = {module: _harness_imports(path) - {module} for module, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target):] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_heist_never_imports_torch():
    statically = {m for m, p in MODULES.items() if m.startswith("harness.heist") and any(
        name == "torch" or name.startswith("torch.") for name in _imports(p))}
    assert not statically, f"torch imported in {sorted(statically)}"
    heist = [m for m in MODULES if m.startswith("harness.heist")]
    code = f"import importlib, sys\nfor m in {heist!r}: importlib.import_module(m)\nprint('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False", "importing harness.heist loaded torch"


def test_importing_harness_loads_neither_torch_nor_the_engine():
    code = "import sys, harness\nprint(sorted({'torch', 'procgen', 'scipy', 'pandas'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"import harness loaded {loaded}"


@pytest.mark.parametrize("module", list(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(PACKAGE.parent)} has {lines} lines (at most {MAX_LINES})"


@pytest.mark.parametrize("name", harness.__all__)
def test_top_level_names_are_the_defining_modules_objects(name):
    """``from harness import X`` gives the same object as its module, whatever was imported before."""
    importlib.import_module("harness.policy.runner")  # once shadowed harness.sites with the module
    value = getattr(harness, name)
    home = importlib.import_module(harness._EXPORTS[name])
    assert value is getattr(home, name)
    assert not isinstance(value, type(harness)), f"harness.{name} is a module"
