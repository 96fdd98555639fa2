"""The README's library example runs as written, and its commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


LIBRARY = [b for b in BLOCKS if "engine.run_until_idle" in b]
PROPERTY_SUITE = [b for b in BLOCKS if "engine_machine(scenario)" in b]


def test_every_python_block_is_tested() -> None:
    assert len(LIBRARY) == len(PROPERTY_SUITE) == 1 and len(BLOCKS) == 2


def test_library_example_runs() -> None:
    exec(compile(LIBRARY[0], "README.md", "exec"), {})


def test_property_suite_example_runs_against_the_example_commands() -> None:
    """The snippet users copy builds a working state machine: run a few examples of it."""
    namespace: dict[str, object] = {}
    exec(compile(PROPERTY_SUITE[0], "README.md", "exec"), namespace)
    machine = namespace["MyCommandsMachine"]
    assert isinstance(machine, type) and issubclass(machine, RuleBasedStateMachine)
    run_state_machine_as_test(machine, settings=settings(max_examples=5, deadline=None,
                                                         derandomize=True))


def test_ci_runs_the_readme_test_command() -> None:
    test_command = ".venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest"
    assert test_command in README
    assert test_command in (ROOT / ".ci" / "run").read_text()
