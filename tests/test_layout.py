"""The package's layout holds: dependencies point one way, no import cycles, modules stay readable.

Every ``import`` of trainwell inside ``src/trainwell`` is read from the source (those inside
functions too, since an import put off until a call is still a dependency); only those under
``if TYPE_CHECKING:`` are left out, as they never run. Each module belongs to a *unit* (a
package such as ``trainwell.train``, or a top-level module such as ``trainwell.schedules``),
and each unit to a level of :data:`LEVELS`. A module may import modules of its own unit and of
units on lower levels, never a unit on its own level or above; and the graph of modules has
no cycle (a module importing its own package's ``__init__`` counts: that is a cycle too).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "trainwell"

# Lowest first. A unit may use the units of every level below its own.
LEVELS: list[tuple[str, ...]] = [
    ("errors", "versions"),                        # the exceptions users catch; trainwell's version
    ("checks", "fileio"),                          # argument checks, safe writes
    ("tensorfile",),                               # safetensors files, atomic and canonical (fileio's writes)
    ("figures",),                                  # matplotlib figures, written atomically by fileio
    ("data",),                                     # datasets, splits, the arrays a fit is given
    ("model",),                                    # layers, init, activations, losses, saving, transfer
    ("optim", "schedules", "uncertainty", "metrics"),  # optimizers, schedules of the step, calibration, metrics by name
    ("callbacks",),                                # hooks into a fit
    ("train",),                                    # the Trainer, its steps, History, resume, DDP
    ("plots",),                                    # figures of a fit: history, schedule, LR sweep
    ("lr_finder", "doctor"),                       # tools that run a Trainer
    ("config", "store"),                           # the config file's schema; the SQLite store of runs
    ("recipes", "estimator"),                      # what each command runs; the scikit-learn wrapper
    ("catalog",),                                  # the chapter's experiments and their report
    ("cli",),                                      # the `trainwell` command
]
LEVEL = {unit: level for level, units in enumerate(LEVELS) for unit in units}

LONG_MODULE_LINES = 330  # about 300: over this, the module's docstring says why it is one module
SHORT_FUNCTIONS = ("train/trainer.py", "catalog/runner.py", "catalog/report.py")  # at most 60 lines each
FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""  # "": the package root, trainwell/__init__.py


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(module: str) -> set[str]:
    """The trainwell modules ``module`` imports (resolved to modules, not names)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "trainwell")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "trainwell":
                continue
            for alias in node.names:  # `from trainwell.train import trainer` imports a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}

def _check_none(found: set[str], what: str) -> None:
    assert not found, f"{what}:\n" + "\n".join(sorted(found))


def test_every_unit_has_a_level():
    units = {unit_of(module) for module in MODULES} - {""}
    assert not units - set(LEVEL), f"units without a level in LEVELS: {sorted(units - set(LEVEL))}"


def test_dependencies_point_down():
    wrong = []
    for module, imported in GRAPH.items():
        unit = unit_of(module)
        if not unit:  # the package root exports the public API: it may import anything
            continue
        for other in sorted(imported):
            other_unit = unit_of(other)
            if other_unit == unit:
                continue
            if not other_unit or LEVEL[other_unit] >= LEVEL[unit]:
                wrong.append(f"{module} -> {other}")
    _check_none(set(wrong), "imports against the direction of LEVELS")


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(GRAPH[module]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state:
                found = visit(other)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_a_wrong_import_and_a_cycle(monkeypatch):
    """The two tests above can fail: a lower unit importing a higher one is caught, and so is a cycle."""
    monkeypatch.setitem(GRAPH, "trainwell.model.layers", GRAPH["trainwell.model.layers"] | {"trainwell.train.trainer"})
    with pytest.raises(AssertionError, match="trainwell.model.layers -> trainwell.train.trainer"):
        test_dependencies_point_down()
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle()


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_it_is(module):
    assert _docstring(MODULES[module]).strip(), f"{module} has no docstring"


def test_long_modules_say_why_they_are_one_module():
    long = []
    for module, path in MODULES.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LONG_MODULE_LINES and "one module" not in _docstring(path):
            long.append(module)
    _check_none(set(long), "modules over about 300 lines whose docstring does not say why they are one module")


@pytest.mark.parametrize("relative", SHORT_FUNCTIONS)
def test_the_loop_the_runner_and_the_report_read_in_short_functions(relative):
    tree = ast.parse((SOURCE / relative).read_text(encoding="utf-8"))
    long = {f"{relative}: {node.name}" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES}
    _check_none(long, f"functions over {FUNCTION_LINES} lines")


PACKAGES = sorted(m for m, p in MODULES.items() if p.name == "__init__.py" and m.count(".") == 1)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_it_may_use(package):
    """The docstring's "may use" names every other unit the package imports (so it cannot go stale)."""
    text = _docstring(MODULES[package])
    assert "may use" in text, f"{package}'s docstring does not say what it may use"
    claimed = text[text.index("may use"):]
    unit = unit_of(package)
    used = {unit_of(other) for module in MODULES if unit_of(module) == unit for other in GRAPH[module]} - {unit}
    unnamed = sorted(u for u in used if not re.search(rf"\b{u}\b", claimed))
    assert not unnamed, f"{package} imports {unnamed}, which its docstring's 'may use' does not name"
