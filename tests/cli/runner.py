"""Running the CLI in tests, in-process or as a real process.

In-process for contracts (fast, and what a library caller gets); a real process only where the test
is about one: a SIGKILL, or a terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from statemachines.cli.main import cli


@dataclass(frozen=True)
class Ran:
    """What a command printed, and its exit status (negative: killed by that signal)."""

    returncode: int
    stdout: str
    stderr: str


def endaction(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Ran:
    """The command, in this process (click's runner), from `cwd` if given."""
    before = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, list(args), env=env)
    finally:
        os.chdir(before)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def endaction_process(*args: str, cwd: Path | None = None, timeout: float = 120) -> Ran:
    """The command as its own process: for a SIGKILL (`--crash-after`) or a terminal."""
    done = subprocess.run([sys.executable, "-m", "statemachines.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return Ran(done.returncode, done.stdout, done.stderr)
