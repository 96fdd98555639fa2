"""The README's library example runs as written, and its commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_library_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command() -> None:
    test_command = ".venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest"
    assert test_command in README
    assert test_command in (ROOT / ".ci" / "run").read_text()
