"""The packages import one way (docs/architecture.md): every import under ``src/selfsup``, function-local ones
included, points to a lower layer, so there is no cycle between top-level packages; methods and modalities never
import each other, evaluation never imports training, and nothing but the CLI imports the workflows."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import selfsup

ROOT = Path(selfsup.__file__).parent
# higher imports lower; one layer's units never import each other
LAYERS: dict[str, int] = {
    "errors": 0,
    "files": 1,
    "data": 1,
    "views": 1,
    "distributed": 1,
    "monitors": 1,
    "encoders": 2,
    "losses": 2,
    "recipe": 2,
    "checkpoint": 3,
    "outputs": 3,
    "methods": 4,
    "modalities": 4,
    "datasets": 5,
    "shards": 5,
    "hf_sources": 5,
    "sources": 6,
    "training": 7,
    "evaluation": 7,
    "workflows": 8,
    "cli": 9,
    "__main__": 10,
}


def _unit(path: Path, root: Path = ROOT) -> str:
    """The top-level package or module a file belongs to (``training`` for ``training/module.py``)."""
    return path.relative_to(root).parts[0].removesuffix(".py")


def imports(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> where (file:line), for every import of another unit of ``root``."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        unit = _unit(path, root)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import; import selfsup.… absolutely"
                parts = (node.module or "").split(".")
                if parts[0] != "selfsup":
                    continue
                targets = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name.split(".")[1] for alias in node.names if alias.name.startswith("selfsup.")]
            else:
                continue
            for target in targets:
                is_unit = (root / target).is_dir() or (root / f"{target}.py").is_file()
                if target != unit and is_unit and unit != "__init__":
                    edges[unit, target].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return edges


def test_every_unit_has_a_layer() -> None:
    units = {_unit(path) for path in ROOT.rglob("*.py")} - {"__init__"}
    assert units <= set(LAYERS), f"place {sorted(units - set(LAYERS))} in LAYERS (and docs/architecture.md)"


def test_imports_only_point_down() -> None:
    upward = [
        f"{a} -> {b} ({', '.join(where)})"
        for (a, b), where in imports().items()
        if a in LAYERS and b in LAYERS and LAYERS[a] <= LAYERS[b]
    ]
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_no_cycle_between_top_level_units() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in imports():
        graph[a].add(b)
    done: set[str] = set()

    def visit(unit: str, path: list[str]) -> None:
        if unit in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(unit) :] + [unit]))
        if unit not in done:
            for target in sorted(graph[unit]):
                visit(target, path + [unit])
            done.add(unit)

    for unit in sorted(graph):
        visit(unit, [])


def test_the_rules_that_matter_most() -> None:
    edges = imports()
    for a, b in (
        ("methods", "modalities"),
        ("modalities", "methods"),
        ("evaluation", "training"),
        ("training", "evaluation"),
    ):
        assert (a, b) not in edges, f"{a} imports {b}: {edges[a, b]}"
    assert {a for a, b in edges if b == "workflows"} <= {"cli", "__main__"}


def test_the_checker_sees_function_local_imports(tmp_path) -> None:
    """The graph includes imports inside functions, the kind that hid the old cycles."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "__init__.py").write_text("def f():\n    from selfsup.b.x import y\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.py").write_text("import selfsup.a\n")
    assert set(imports(tmp_path)) == {("a", "b"), ("b", "a")}
