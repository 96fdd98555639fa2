"""The package as `pip install endaction` gives it.

A wheel built from this tree is unpacked where a type checker looks for installed packages. Its
`py.typed` markers are what make mypy read the hints of `statemachines` and `persistence` on a
user's file (without them it sees nothing and says the library has no stubs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

USER_FILE = '''
from persistence import SqlStore, open_store
from statemachines import App, CommandRegistry, Limits, __version__

store: SqlStore = open_store("x.db")
limits = Limits(task_timeout="ten minutes")
registry: CommandRegistry = CommandRegistry([])
version: int = __version__
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(out), str(ROOT)], capture_output=True, text=True,
                           timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("endaction-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_carries_the_type_markers(installed: Path) -> None:
    assert (installed / "statemachines" / "py.typed").exists()
    assert (installed / "persistence" / "py.typed").exists()


def test_mypy_sees_the_types_on_a_users_file(installed: Path, tmp_path: Path) -> None:
    user = tmp_path / "user_app.py"
    user.write_text(USER_FILE)
    # Only the unpacked wheel on the path: not this source tree, not the editable install's
    # import hook (which mypy does not follow).
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("MYPYPATH", None)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--python-executable",
         sys.executable, "--follow-imports=silent", str(user)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = checked.stdout
    assert "missing library stubs or py.typed marker" not in out, out
    # The two planted mistakes are found, so the hints were read; the rest passes.
    assert 'Argument "task_timeout" to "Limits" has incompatible type "str"' in out, out
    assert 'Incompatible types in assignment (expression has type "str", variable has ' \
           'type "int")' in out, out
    assert "Found 2 errors in 1 file" in out, out
