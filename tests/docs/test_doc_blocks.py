"""Docs that run: every python, sh and console block of README.md and docs/ runs as written.

A block that does not run says why (`<!-- not runnable: why -->`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from .doc_blocks import ROOT, Block, blocks, expected_prints, pages, shell_steps

RUN_PAGES = [p for p in pages() if any(b.not_runnable is None for b in blocks(p))]
_IDS = re.compile(r"\b(?:vm-)?[0-9a-f]{8,}\b")


def _masked(text: str) -> str:
    """Ids and timings differ from run to run; the rest must not."""
    return _IDS.sub("<id>", text).rstrip()


def _run_python(block: Block, namespace: dict[str, object]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.text, block.where, "exec"), namespace)
    printed = out.getvalue().splitlines()
    said = expected_prints(block.text)
    assert len(printed) >= len(said), f"{block.where}: printed {printed}"
    for line, expected in zip(printed, said, strict=False):
        if expected is not None:
            assert expected.startswith(line) or line.startswith(expected), \
                f"{block.where}: printed {line!r}, the page says {expected!r}"


def _run_shell(block: Block, folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENDACTION_", "OTEL_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    for step in shell_steps(block):
        done = subprocess.run(["bash", "-c", step.command], cwd=folder, env=env, text=True,
                              capture_output=True, timeout=300)
        status = done.returncode if done.returncode >= 0 else 128 - done.returncode
        assert status == step.exit_status, (
            f"{block.where}: `{step.command}` exited {status}, the page says "
            f"{step.exit_status}\n{done.stdout}\n{done.stderr}")
        shown = [_masked(line) for line in step.expected if line.strip()]
        got = _masked(done.stdout).splitlines()
        missing = [line for line in shown if line not in got]
        assert missing == [], f"{block.where}: `{step.command}` did not print {missing}"


def test_every_block_runs_or_says_why_not() -> None:
    unexplained = [b.where for p in pages() for b in blocks(p) if b.not_runnable == ""]
    assert unexplained == []
    # Not vacuous: blocks of each kind are found, and most of them run.
    found = [b for p in pages() for b in blocks(p)]
    assert {b.language for b in found if b.not_runnable is None} >= {"python", "sh", "console"}
    assert sum(b.not_runnable is None for b in found) >= 8


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_page_runs_as_written(page: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's blocks run in order, in a folder of their own.

    Python runs in one namespace, files are written where its shell blocks find them, and `.venv` is
    the environment running the tests.
    """
    (tmp_path / ".venv").symlink_to(sys.prefix)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in os.environ if n.startswith(("ENDACTION_", "OTEL_"))]:
        monkeypatch.delenv(name)
    module = types.ModuleType("doc_page")  # a module of its own, as dataclasses need
    monkeypatch.setitem(sys.modules, "doc_page", module)
    namespace = module.__dict__
    for block in blocks(page):
        if block.not_runnable is not None:
            continue
        if block.language == "python" and block.file_name:
            (tmp_path / block.file_name).write_text(block.text)
        elif block.language == "python":
            _run_python(block, namespace)
        else:
            _run_shell(block, tmp_path)


def test_the_shell_reader_reads_prompts_continuations_and_exits() -> None:
    block = Block(ROOT / "x.md", 1, "console",
                  "$ a --x \\\n  --y   # exit 5\nout 1\n\nout 2\n$ b\n", None)
    steps = shell_steps(block)
    assert [(s.command, s.exit_status, s.expected) for s in steps] == [
        ("a --x \\\n  --y   # exit 5", 5, ("out 1", "", "out 2")), ("b", 0, ())]
    assert expected_prints("print(1)  # 1\nprint(2)\n# 2: two\nx = 3\nprint(x)\n") == \
        ["1", "2: two", None]
