"""The code blocks of README.md and docs/, read the way the docs tests run them.

A ```python block runs, with the other runnable python blocks of its page, in order, in one
namespace; one that starts with `# name.py` is a file for the page's later blocks instead. A
```sh or ```console block runs line by line in bash (a `$ ` prompt is dropped, the lines
after a prompted one are its expected output). A line's trailing `# exit N` is the status it
must end with; otherwise 0. A block preceded by `<!-- not runnable: why -->` is not run,
and the why must be said. Other blocks (diagrams, layouts, YAML) are not code to run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE_LANGUAGES = ("python", "sh", "console")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!--\s*not runnable:?(.*?)-->\s*$", re.S)
_EXIT = re.compile(r"#\s*exit (\d+)\b")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    text: str
    not_runnable: str | None  # the reason, when marked; "" when marked without one

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """`name.py` when the block is a file for later blocks (`# name.py` first)."""
        first = self.text.splitlines()[0] if self.text else ""
        match = re.fullmatch(r"#\s*([\w/]+\.py)\s*", first)
        return match.group(1) if match else None


def pages() -> list[Path]:
    return [ROOT / "README.md",
            *sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        if match.group(1) not in RUNNABLE_LANGUAGES:
            continue
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        found.append(Block(page, text[:match.start()].count("\n") + 1, match.group(1),
                           match.group(2), mark.group(1).strip() if mark else None))
    return found


@dataclass(frozen=True)
class ShellStep:
    command: str
    exit_status: int
    expected: tuple[str, ...]  # output lines shown after a prompted command


def shell_steps(block: Block) -> list[ShellStep]:
    """The commands of a sh or console block, backslash continuations joined."""
    prompted = block.language == "console" or any(
        line.startswith("$ ") for line in block.text.splitlines())
    steps: list[ShellStep] = []
    command: list[str] = []
    for line in block.text.splitlines():
        if command:  # a continuation
            command.append(line)
        elif prompted and not line.startswith("$ "):
            if steps:
                last = steps[-1]
                steps[-1] = ShellStep(last.command, last.exit_status, (*last.expected, line))
            continue
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        else:
            command.append(line[2:] if line.startswith("$ ") else line)
        if not command[-1].rstrip().endswith("\\"):
            joined = "\n".join(command)
            exit_match = _EXIT.search(joined)
            steps.append(ShellStep(joined, int(exit_match.group(1)) if exit_match else 0, ()))
            command = []
    return steps


def expected_prints(code: str) -> list[str | None]:
    """For each top-level print of a python block, in order, what its comment says it prints.

    That is the comment on its last line, or a comment line right after it; None when it says
    nothing. A comment that goes on after the value (`...]: the pool's answer`) still matches a
    value it starts with.
    """
    lines = code.splitlines()
    said: list[str | None] = []
    for node in ast.parse(code).body:
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "print"):
            continue
        end = node.end_lineno or node.lineno
        tail = lines[end - 1]
        comment = tail.split("  # ", 1)[1] if "  # " in tail else None
        if comment is None and end < len(lines) and lines[end].startswith("# "):
            comment = lines[end][2:]
        said.append(comment.strip() if comment else None)
    return said
