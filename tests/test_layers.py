"""The arrows between layers point one way (docs/architecture.md).

Walks every module's imports (static AST, including imports inside functions)
and fails on an import that runs against the direction of the data flow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gpubill

ROOT = Path(gpubill.__file__).parent

# The base every component may import: the exact number form (gpubill/numbers.py).
BASE = {"numbers"}
# What each component may import from gpubill (itself and BASE always allowed).
ALLOWED = {
    "numbers": set(),
    "dsl": BASE,
    "engine": {"dsl"} | BASE,
    "contracts": {"dsl", "engine"} | BASE,
    "store": BASE,
    "service": {"dsl", "engine", "contracts", "store"} | BASE,
    "server": {"dsl", "engine", "contracts", "store", "service"} | BASE,
    "agent": BASE,
    "tui": {"dsl", "engine", "contracts", "store", "service"} | BASE,
    "cli": {"dsl", "engine", "contracts", "store", "service", "server", "agent", "tui"} | BASE,
}


def component_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "gpubill" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
    return {m for m in found if m.startswith("gpubill.")}


def all_modules():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            module = ".".join(parts)
            yield path, module + ".__init__"
        else:
            yield path, ".".join(parts)


def test_every_component_is_known():
    comps = {component_of(m) for _, m in all_modules()} - {None, "__init__", "__main__"}
    assert comps <= set(ALLOWED), f"unknown components: {comps - set(ALLOWED)}"


def test_no_import_runs_the_wrong_way():
    bad = []
    for path, module in all_modules():
        comp = component_of(module)
        if comp not in ALLOWED:
            continue
        for imported in imports_of(path, module):
            target = component_of(imported)
            if target in (None, comp, "__init__"):
                continue
            if target not in ALLOWED[comp]:
                bad.append(f"{module} imports {imported} ({comp} -> {target})")
    assert not bad, "imports against the layer direction:\n" + "\n".join(bad)


def test_the_walker_sees_a_back_edge(tmp_path):
    # The check itself must be able to fail: a dsl module importing the store.
    f = tmp_path / "bad.py"
    f.write_text("from gpubill.store import db\nimport gpubill.engine.rate\n")
    found = imports_of(f, "gpubill.dsl.bad")
    targets = {component_of(m) for m in found}
    assert targets == {"store", "engine"}
    assert not targets <= ALLOWED["dsl"]
