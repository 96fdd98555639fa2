"""The domain never imports the database: statemachines depends on a store protocol only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("persistence", "sqlalchemy", "psycopg")


def test_statemachines_never_imports_persistence_outside_the_cli() -> None:
    offenders = []
    for path in sorted((ROOT / "statemachines").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "statemachines").parts:
            continue  # the CLI is where the two packages are wired together
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names
                          if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_the_layering_check_sees_imports() -> None:
    """Guard against a vacuous pass: the CLI does import persistence."""
    cli = (ROOT / "statemachines" / "cli" / "demo_world.py").read_text()
    assert "from persistence import" in cli
