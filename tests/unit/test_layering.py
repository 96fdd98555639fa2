"""The layers, as imports: this test is the contract.

The core imports no adapter or entry point; adapters import the core and nothing of each other;
`persistence` is an adapter too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Third-party packages only adapters and entry points may use.
OUTSIDE_THE_CORE = ("sqlalchemy", "psycopg", "alembic", "click", "rich", "hypothesis", "graphviz",
                    "starlette", "uvicorn", "httpx", "opentelemetry")
LAYERS = {
    "core": ["statemachines/core"],
    "adapter": ["statemachines/diagrams", "statemachines/http", "statemachines/observability",
                "persistence"],
    "entry": ["statemachines/cli", "statemachines/testing", "statemachines/example",
              "statemachines/web", "statemachines/toolkit"],
}


def _package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "persistence":
        return "persistence"
    if parts[0] == "statemachines" and len(parts) > 1:
        return f"statemachines/{parts[1]}"
    return parts[0]


def _imports(path: Path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif (isinstance(node, ast.ImportFrom) and node.module is not None) or (
                isinstance(node, ast.ImportFrom) and node.level):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] \
                if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append(module)
    return found


def _layer(package: str) -> str | None:
    return next((name for name, folders in LAYERS.items() if package in folders), None)


def _violations(folder: str) -> list[str]:
    layer = _layer(folder)
    problems = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in _imports(path):
            target = _package_of(module)
            target_layer = _layer(target)
            where = f"{path.relative_to(ROOT)} imports {module}"
            if layer == "core" and (target_layer in ("adapter", "entry")
                                    or module.split(".")[0] in OUTSIDE_THE_CORE):
                problems.append(where)
            if layer == "adapter" and target != folder and target_layer in ("adapter", "entry"):
                problems.append(where)
    return problems


@pytest.mark.parametrize("folder", [*LAYERS["core"], *LAYERS["adapter"]])
def test_imports_point_down_only(folder: str) -> None:
    assert _violations(folder) == []


def test_the_cli_loads_applications_and_never_imports_an_example() -> None:
    """The CLI finds a domain through `--app`, as every user's domain is found.

    An import of an example from the CLI would make the VM demo special again.
    """
    importing = [f"{path.relative_to(ROOT)} imports {module}"
                 for folder in ("statemachines/cli", "statemachines/web", "statemachines/toolkit")
                 for path in sorted((ROOT / folder).rglob("*.py"))
                 for module in _imports(path) if _package_of(module) == "statemachines/example"]
    assert importing == []


def test_applications_and_the_web_view_use_the_toolkit_not_the_cli() -> None:
    """Arrows run down only: the toolkit imports none of its users.

    The web view and the examples import nothing of the `endaction` group, and an example's own
    commands take the toolkit's public names (`statemachines.toolkit`), as a user's would.
    """
    problems = []
    for folder, refused in (("statemachines/toolkit", ("statemachines/cli", "statemachines/web",
                                                       "statemachines/example",
                                                       "statemachines/testing")),
                            ("statemachines/web", ("statemachines/cli",)),
                            ("statemachines/example", ("statemachines/cli", "statemachines/web"))):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in _imports(path):
                if _package_of(module) in refused or (
                        folder == "statemachines/example"
                        and module.startswith("statemachines.toolkit.")):
                    problems.append(f"{path.relative_to(ROOT)} imports {module}")
    assert problems == []
    # Not vacuous: the example's own commands and the web view do import the toolkit.
    assert "statemachines.toolkit" in _imports(ROOT / "statemachines/example/vm/demo_cli.py")
    assert "statemachines/toolkit" in {_package_of(m) for m in
                                       _imports(ROOT / "statemachines/web/roots_page.py")}


def test_the_layering_check_sees_imports() -> None:
    """Guard against a vacuous pass: the layering check sees imports.

    Entry points do import adapters, and a core module that imported one would be caught.
    """
    assert "persistence" in {_package_of(m) for m in
                             _imports(ROOT / "statemachines/example/vm/storage_agents.py")}
    assert "statemachines/core" in {_package_of(m) for m in
                                    _imports(ROOT / "persistence/sql_store.py")}


def test_no_module_outside_the_examples_speaks_of_a_domain() -> None:
    """The core, the diagrams, the CLI group and the property suite are domain-free.

    The VM demo's words (images, their copies) live under `statemachines/example` only.
    """
    speaking = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "statemachines").rglob("*.py"))
        if "example" not in path.relative_to(ROOT).parts
        and "image" in path.read_text().lower()
    ]
    assert speaking == []
    # Not vacuous: the example does use the word.
    assert "image" in (ROOT / "statemachines/example/vm/commands.py").read_text().lower()


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _file_graph() -> dict[str, set[str]]:
    """Which of our modules each of our modules imports, at any depth of the file.

    An import inside a function is an arrow of the house too. `from pkg import mod` points at `mod`,
    `from pkg import name` at `pkg`.
    """
    paths = {_module_of(p): p for folder in ("statemachines", "persistence")
             for p in (ROOT / folder).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] \
                    if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                submodules = {f"{target}.{a.name}" for a in node.names} & paths.keys()
                found.update(submodules)
                if len(submodules) < len(node.names):
                    found.add(target)
        edges = set()
        for name in found:
            while name and name not in paths:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = _pop_component(stack, on_stack, node)
                    if len(members) > 1:
                        circles.append(sorted(members))
    return circles


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    """The members of the component whose root is `root`: the stack down to it."""
    members = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        members.append(member)
        if member == root:
            return members


def test_no_import_circle_between_files() -> None:
    """The house's arrows run one way: no module reaches itself through its imports.

    An application's own commands get what they need from modules that do not import them.
    """
    assert _circles(_file_graph()) == []


def test_the_circle_check_sees_circles() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
    graph = _file_graph()
    assert "statemachines.example.vm.domain_app" in graph["statemachines.example.vm.demo_cli"]
    assert "persistence.sql_transaction" in graph["persistence.sql_store"]


def test_no_import_circle_between_folders() -> None:
    """Rooms too: no folder reaches itself through the imports of its files.

    The web view and the command line both build on the toolkit; neither imports the other's
    insides.
    """
    graph = _file_graph()
    paths = {_module_of(p): p for folder in ("statemachines", "persistence")
             for p in (ROOT / folder).rglob("*.py")}

    def room(module: str) -> str:
        return str(paths[module].parent.relative_to(ROOT))

    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room(module), set()).update(
            room(t) for t in targets if room(t) != room(module))
    assert _circles(rooms) == []
    assert "statemachines/toolkit" in rooms["statemachines/web"]  # not vacuous


# The core's rooms, each with the rooms it may import (and `core.errors`, every room's): the
# machines import nothing of the records or the engine, the records nothing of what stores or
# runs them, a tick's phases nothing of the engine that opens its transaction.
CORE_ROOMS: dict[str, set[str]] = {
    "machines": set(),
    "records": {"machines"},
    "ports": {"machines", "records"},
    "commands": {"machines", "records", "ports"},
    "operations": {"machines", "records", "ports", "commands"},
    "tick": {"machines", "records", "ports", "commands"},
    "engine": {"machines", "records", "ports", "commands", "operations", "tick"},
}


def _core_room_imports() -> dict[str, set[str]]:
    """For each room of the core, the other rooms its files import."""
    found: dict[str, set[str]] = {room: set() for room in CORE_ROOMS}
    for room in CORE_ROOMS:
        for path in sorted((ROOT / "statemachines/core" / room).rglob("*.py")):
            for module in _imports(path):
                parts = module.split(".")
                if parts[:2] == ["statemachines", "core"] and len(parts) > 2 \
                        and parts[2] != room:
                    found[room].add(parts[2])
    return found


def test_the_core_rooms_import_only_the_rooms_below_them() -> None:
    found = _core_room_imports()
    assert set(found) | {"errors", "__init__"} == {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "statemachines/core").iterdir() if p.name != "__pycache__"}
    upward = {room: sorted(rooms - CORE_ROOMS[room] - {"errors"})
              for room, rooms in found.items() if rooms - CORE_ROOMS[room] - {"errors"}}
    assert upward == {}
    # Not vacuous: the engine runs the tick's phases, a tick moves records along the machines.
    assert {"tick", "operations"} <= found["engine"]
    assert "machines" in found["tick"]
    assert found["machines"] <= {"errors"}


def test_the_hook_context_reaches_its_tick_only_through_hook_access() -> None:
    """Users' hooks call `HookContext`; what it may reach of the tick is `HookAccess`.

    A context that imported the tick's state, its recorder or its phases could settle a
    rollback or write the report from inside a user's hook.
    """
    graph = _file_graph()
    tick = "statemachines.core.tick"
    reached = {m for m in graph[f"{tick}.hook_context"] if m.startswith(f"{tick}.")}
    assert reached == {f"{tick}.hook_access", f"{tick}.record_copies"}
    # Not vacuous: the adapter does reach the tick's state, and builds the context.
    assert {f"{tick}.tick_state", f"{tick}.hook_context"} <= graph[f"{tick}.tick_access"]
