"""The layers of DESIGN.md ("Packages and layers"), checked on the imports of rayflow/ (ast, nothing
is imported): only engine/ imports ray or prefect; stages/, ml/ and media/ never reach up into
engine/, cli/ or web/; cli/ and web/ talk to engine/, catalog/, record and config only; and no two
rayflow packages import each other, directly or round a longer loop.

Known violations wait in ``ALLOWED``, each with its reason: the list must only shrink. A new
violation fails; so does an allowed one that has gone (delete its line)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rayflow"
ORCHESTRATION = {"ray", "prefect", "prefect_ray"}
LOWER = {"stages", "ml", "media"}
UPPER = {"engine", "cli", "web"}
FRONTS_MAY_USE = {"engine", "catalog", "handoff", "record", "config", "rayflow"}

ALLOWED: set[tuple[str, str, str]] = {
    # (rule, importing module, imported module) -- shrink this list; never grow it.
    # cli/ still reaches below engine/ (engine should offer these: models list/verify, the step
    # plan, fingerprints for `rayflow verify`, search encoders and re-embedding):
    ("front", "rayflow.cli.main", "rayflow.ml.registry"),
    ("front", "rayflow.cli.main", "rayflow.stages.fingerprint"),
    ("front", "rayflow.cli.main", "rayflow.stages.steps"),
    ("front", "rayflow.cli.search_cmds", "rayflow.ml.text_encoder"),
    ("front", "rayflow.cli.search_cmds", "rayflow.stages.embed"),
    ("front", "rayflow.cli.search_cmds", "rayflow.stages.fingerprint"),
    # `rayflow serve` starts the web app from cli/ (engine could host the server instead):
    ("front", "rayflow.cli.serve_cmd", "rayflow.web.app"),
}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rayflow"


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import in rayflow/, lazy ones included."""
    found: list[tuple[str, str]] = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((module, node.module))
    return found


def violations() -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for source, target in imports():
        top = target.split(".")[0]
        here = package_of(source)
        if top in ORCHESTRATION and here != "engine":
            out.add(("ray/prefect outside engine", source, target))
        if top != "rayflow":
            continue
        there = package_of(target)
        if here in LOWER and there in UPPER:
            out.add(("upward", source, target))
        if here in {"cli", "web"} and there not in FRONTS_MAY_USE | {here}:
            out.add(("front", source, target))
    return out


def package_cycles() -> set[tuple[str, ...]]:
    """Every loop in the package graph, as its sorted set of packages."""
    graph: dict[str, set[str]] = {}
    for source, target in imports():
        if target.split(".")[0] == "rayflow" and package_of(source) != package_of(target):
            graph.setdefault(package_of(source), set()).add(package_of(target))
    graph.pop("rayflow", None)  # rayflow/__init__.py holds only the version
    for edges in graph.values():
        edges.discard("rayflow")
    loops: set[tuple[str, ...]] = set()

    def walk(node: str, trail: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in trail:
                loops.add(tuple(sorted(trail[trail.index(nxt):])))
            elif len(trail) < len(graph):
                walk(nxt, [*trail, nxt])

    for start in graph:
        walk(start, [start])
    return loops


def test_imports_keep_to_the_layers() -> None:
    found = violations()
    assert found - ALLOWED == set(), "new layer violations (fix them; do not allow-list them)"
    assert ALLOWED - found == set(), "these allowed violations are gone: delete them from ALLOWED"


def test_no_two_packages_import_each_other() -> None:
    assert package_cycles() == set()


def test_the_checks_see_real_imports() -> None:
    pairs = imports()
    assert ("rayflow.engine.pools", "ray") in pairs  # a module-level import
    assert any(s == "rayflow.stages.analyze" and t == "rayflow.stages.speech" for s, t in pairs)
    assert any(s.startswith("rayflow.ml.") and t == "rayflow.config" for s, t in pairs)


def test_no_long_functions_or_modules() -> None:
    """The house's size limits (issue #12): no function over 120 lines, no module over 600."""
    too_long: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text()
        if source.count("\n") > 600:
            too_long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (node.end_lineno or 0) - node.lineno >= 120:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}()")
    assert too_long == []
