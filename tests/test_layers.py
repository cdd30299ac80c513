"""The arrows between layers point one way (docs/architecture.md).

Walks every module's imports (static AST, including imports inside functions,
and ``from gpubill import store`` as an import of the store) and fails on an
import that runs against the direction of the data flow.

The shell (cli, server, tui, agent) goes through the service layer: it imports
``gpubill.service``, the language package (``check``, ``fmt``, ``import``) and
the number form, never the store's or the engine's modules, not even their
packages' top level. `gpubill import lago` reaches the importer through
``gpubill.service.lago_import``; only the server imports ``gpubill.lago``
itself, for the wire shapes of Lago's events API. What the shell needs of the store (the store handle,
its errors, the event-file readers, timestamps) the service layer exports
(``gpubill/service/events.py``, ``errors.py``, ``keys.py``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gpubill

ROOT = Path(gpubill.__file__).parent

# The base every component may import: the exact number form (gpubill/numbers.py) and text
# shown to a person (gpubill/text.py).
BASE = {"numbers", "text"}
# What the shell may import: the service layer, the language (check/fmt/import), the base.
SHELL = {"service", "dsl"} | BASE
SHELL_COMPONENTS = ("cli", "server", "tui", "agent")
# What each component may import from gpubill (itself and BASE always allowed).
ALLOWED = {
    "numbers": set(),
    "text": set(),
    "dsl": BASE,
    "engine": {"dsl"} | BASE,
    "contracts": {"dsl", "engine"} | BASE,
    "store": BASE,
    # Lago's shapes: the importer (Lago JSON -> .bill through the language's IR) and the events API's wire shapes.
    "lago": {"dsl"} | BASE,
    # The scale-out event store: the store's values over ClickHouse and Redis, and the engine's program
    # types for the rating it pushes down to the shards.
    "cluster": {"store", "engine"} | BASE,
    "service": {"dsl", "engine", "contracts", "store", "lago", "cluster"} | BASE,
    "server": SHELL | {"lago"},  # the events API answers in Lago's wire shapes (lago/events_api.py)
    "agent": SHELL,
    "tui": SHELL,
    "cli": SHELL | {"server", "agent", "tui"},  # the command line starts the other shells
}
# Modules and packages directly under gpubill/: the components an import can name.
COMPONENTS = {p.stem for p in ROOT.iterdir()
              if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())}


def component_of(module: str) -> str | None:
    """The component a module name is in; None outside gpubill and for a name of the root
    package itself (``gpubill.__version__``)."""
    parts = module.split(".")
    if parts[0] != "gpubill" or len(parts) < 2 or parts[1] not in COMPONENTS:
        return None
    return parts[1]


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
            if name == "gpubill":  # `from gpubill import store` imports the store
                found.update(f"{name}.{a.name}" for a in node.names)
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
    f.write_text("from gpubill.store import db\nimport gpubill.engine.fast.rate\n")
    found = imports_of(f, "gpubill.dsl.bad")
    targets = {component_of(m) for m in found}
    assert targets == {"store", "engine"}
    assert not targets <= ALLOWED["dsl"]


def test_the_walker_sees_a_package_imported_by_name(tmp_path):
    # `from gpubill import store` and `from .. import engine` name the package, not a module of it.
    f = tmp_path / "bad.py"
    f.write_text("from gpubill import store\nfrom .. import engine\nfrom gpubill import __version__\n")
    found = imports_of(f, "gpubill.server.bad")
    assert {component_of(m) for m in found} - {None} == {"store", "engine"}


def test_the_shell_goes_through_the_service_layer():
    # DESIGN.md: the shell calls the service layer (and dsl for check/fmt), never the
    # store's or the engine's internals; test_no_import_runs_the_wrong_way holds it to this.
    for comp in SHELL_COMPONENTS:
        assert not ALLOWED[comp] & {"store", "engine", "contracts"}, comp


def _loaded_by(code: str) -> set[str]:
    """The top-level modules (and gpubill components) a fresh interpreter has loaded after ``code``."""
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=ROOT.parent).stdout.split("\n")[-2].split()
    return {m.split(".")[0] for m in out} | {".".join(m.split(".")[:2]) for m in out if m.startswith("gpubill.")}


def test_check_loads_no_numba_numpy_or_store():
    loaded = _loaded_by("from gpubill.cli import main\n"
                        "assert main(['check', 'examples']) == 0")
    assert not loaded & {"numba", "numpy", "llvmlite", "gpubill.store", "gpubill.engine",
                         "gpubill.service"}


def test_the_event_commands_load_no_engine():
    # ingest, events, keys and serve go through service/events.py, which never pulls in numba.
    loaded = _loaded_by("import gpubill.cli.ingest, gpubill.cli.events, gpubill.cli.keys, "
                        "gpubill.cli.serve, gpubill.server.app, gpubill.service.errors, "
                        "gpubill.service.events, gpubill.service.keys")
    assert "gpubill.store" in loaded  # the probe imported what the commands use
    assert not loaded & {"numba", "llvmlite", "gpubill.engine", "gpubill.contracts"}


def test_the_lago_importer_loads_no_server_numba_or_store():
    # gpubill/lago holds the importer and the events API's wire shapes side by side; `gpubill import lago`
    # loads the first only (gpubill/lago/__init__.py imports nothing).
    loaded = _loaded_by("import gpubill.cli.importer, gpubill.service.lago_import")
    assert "gpubill.lago" in loaded  # the probe imported what the command uses
    assert not loaded & {"numba", "numpy", "llvmlite", "starlette", "gpubill.store", "gpubill.engine",
                         "gpubill.server"}
