"""Imports point one way: read from the source's import statements (every `import` and `from … import`,
inside functions too), so that a layer crossed the wrong way fails here rather than in a reader's head.

- The engine imports nothing of livemigrate outside `engine/`: no HTTP, no store, no roles.
- Inside the engine, each module imports only modules of a lower layer — vocabulary, shared state, the
  floor (`mongo/`), the phases, the coordinator — or of its own layer; a phase never imports another
  phase (a phase is a module, or a package whose modules import each other).
- The two roles — the Cloud Manager role's package and the Atlas role's — never import each other.

And who may call an API route is read at the route: each operation names one guard of
`authorization.py` in its signature, of its own API's side (the console's: tests/test_console.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from livemigrate import authorization
from livemigrate.vocabulary import SOURCE, SOURCE_PREFIX, TARGET, TARGET_PREFIX
from tests.support import app_routes

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "livemigrate"

# Each engine module's layer, by its name under `livemigrate.engine`; phases by their own name.
VOCABULARY = {"errors", "options", "events", "changes", "digests", "versions"}
SHARED_STATE = {"checkpoints", "ledger", "ledger_tables"}
PHASES = {"discover", "sharding", "copy", "capture", "apply", "verify"}
LAYERS = ("vocabulary", "shared state", "floor", "phase", "coordinator")
ROLES = ("cloud_manager", "atlas")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every livemigrate module `path` imports; `from X import name` counts as X.name
    when X.name is a module of the package, as X otherwise."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("livemigrate"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("livemigrate"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or \
                    (PACKAGE.parent / Path(*candidate.split("."))).is_dir()
                yield node.lineno, candidate if is_module else base


def _engine_place(module: str) -> tuple[str, str]:
    """(layer, unit) of an engine module: the unit is what may import itself (a phase package, say)."""
    name = module.removeprefix("livemigrate.engine").lstrip(".")
    head = name.split(".", 1)[0]
    if head in VOCABULARY:
        return "vocabulary", head
    if head in SHARED_STATE:
        return "shared state", head
    if head == "mongo":
        return "floor", head
    if head in PHASES:
        return "phase", head
    if head in ("coordinator", "preflight"):
        return "coordinator", "coordinator"
    raise AssertionError(f"{module}: no layer (add it to tests/test_layers.py)")


def _modules(under: str) -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def test_the_engine_imports_nothing_of_livemigrate_outside_it() -> None:
    crossings = [f"{_module_name(path)}:{line} imports {imported}" for path in _modules("engine")
                 for line, imported in _imports(path)
                 if not imported.startswith("livemigrate.engine")]
    assert crossings == []


def test_every_engine_import_points_down_and_no_phase_imports_another() -> None:
    wrong = []
    for path in _modules("engine"):
        importer = _module_name(path)
        if importer == "livemigrate.engine":
            continue  # the package's face: re-exports what callers use
        layer, unit = _engine_place(importer)
        for line, imported in _imports(path):
            if imported == "livemigrate.engine":
                wrong.append(f"{importer}:{line} imports the engine's face, {imported}")
                continue
            their_layer, their_unit = _engine_place(imported)
            upward = LAYERS.index(their_layer) > LAYERS.index(layer)
            sideways = layer == their_layer == "phase" and unit != their_unit
            if upward or sideways:
                wrong.append(f"{importer}:{line} ({layer}) imports {imported} ({their_layer})")
    assert wrong == []


def _graph() -> dict[str, set[str]]:
    """Each livemigrate module and the livemigrate modules it imports (a package: its `__init__`)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[_module_name(path)] = {imported for _, imported in _imports(path)}
    return graph


def _reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, waiting = set(), [start]
    while waiting:
        module = waiting.pop()
        for imported in graph.get(module, set()):
            if imported not in seen:
                seen.add(imported)
                waiting.append(imported)
    return seen


def test_the_two_roles_never_import_each_other_even_through_another_module() -> None:
    graph = _graph()
    crossings = [f"{module} reaches {reached}"
                 for role, other in (ROLES, ROLES[::-1]) for module in graph if module.startswith(f"livemigrate.{role}")
                 for reached in sorted(_reached(graph, module)) if reached.startswith(f"livemigrate.{other}")]
    assert crossings == []


def test_the_check_sees_a_phase_importing_another(tmp_path: Path) -> None:
    """The rule bites: an import of the coordinator from a phase, written the way the engine writes its
    imports, is read as one."""
    module = tmp_path / "module.py"
    module.write_text("def later() -> None:\n    from livemigrate.engine.coordinator.replay import Replay\n")
    [(line, imported)] = list(_imports(module))
    assert (line, imported) == (2, "livemigrate.engine.coordinator.replay")
    assert _engine_place(imported) == ("coordinator", "coordinator")
    assert _engine_place("livemigrate.engine.verify.passes") == ("phase", "verify")


def test_every_api_operation_names_one_guard_of_its_side_in_its_signature(tmp_path: Path) -> None:
    """No handler checks who calls it: each documented operation of both APIs names exactly one guard of
    `authorization.py` (a role guard, `Caller`, `LinkKey` or `AgentKey`), and a role guard of its own API's
    side — a Cloud Manager route guarded for Atlas orgs would answer 404 to every caller of its own."""
    sides = {SOURCE_PREFIX: SOURCE, TARGET_PREFIX: TARGET}
    operations = [route for route in app_routes(tmp_path) if route.path.startswith(tuple(sides)) and route.include_in_schema]
    assert len(operations) > 60
    wrong = []
    for route in operations:
        guards = [dependency.call for dependency in route.dependant.dependencies
                  if getattr(dependency.call, "__module__", None) == authorization.__name__]
        side = next(side for prefix, side in sides.items() if route.path.startswith(prefix))
        if len(guards) != 1 or getattr(guards[0], "side", side) != side:
            wrong.append(f"{sorted(route.methods)} {route.path}: {guards}")
    assert wrong == []
