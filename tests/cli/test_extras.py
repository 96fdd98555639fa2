"""Without the `http`, `svg` and `testing` extras, the library and the CLI still run.

What needs an extra says which one.

Each case runs a fresh interpreter in which the extras' modules cannot be imported (set to
None in `sys.modules`, as an uninstalled package behaves), so the test environment, which
has every extra, stands for a plain `pip install endaction`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from statemachines import MissingExtra
from statemachines.core.errors import EXTRAS, extra_missing

BLOCKED = sorted({module for modules in EXTRAS.values() for module in modules})
PRELUDE = f"import sys; sys.modules.update(dict.fromkeys({BLOCKED!r}))\n"


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRELUDE + code], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def _endaction(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return _python("from statemachines.cli.main import main\n"
                   f"sys.argv = ['endaction', *{args!r}]\nmain()\n", cwd)


def test_the_demo_and_the_text_diagrams_need_no_extra(tmp_path: Path) -> None:
    demo = _endaction(["demo", "--images", "3", "--fail", "1", "--db",
                       str(tmp_path / "demo.db"), "--storage", str(tmp_path / "storage")],
                      tmp_path)
    assert "leftovers: none" in demo.stdout, demo.stderr
    diagrams = _endaction(["diagrams", "--out", str(tmp_path / "d"), "--format", "mmd"],
                          tmp_path)
    assert diagrams.returncode == 0, diagrams.stderr
    assert (tmp_path / "d" / "command.mmd").exists()


@pytest.mark.parametrize(("args", "extra"), [
    (["ui"], "http"),
    (["worker", "--metrics-port", "0"], "http"),
    (["agent", "serve", "--storage", "st"], "http"),
    (["diagrams", "--out", "d", "--format", "svg"], "svg"),
    (["diagrams", "--out", "d", "--format", "dot"], "svg"),
])
def test_a_command_that_needs_an_extra_names_it(tmp_path: Path, args: list[str],
                                                extra: str) -> None:
    done = _endaction(args, tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"needs endaction's {extra!r} extra" in done.stderr
    assert f"pip install 'endaction[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "st").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("statement", [
    "from statemachines.http import HttpAgent",
    "from statemachines.http import host_app",
    "import statemachines.http.server",
    "import statemachines.web",
    "from statemachines.observability import metrics_app",
])
def test_importing_what_needs_the_http_extra_raises_missing_extra(tmp_path: Path,
                                                                  statement: str) -> None:
    done = _python(f"try:\n    {statement}\nexcept ImportError as err:\n"
                   "    print(type(err).__name__, err.extra)\n", tmp_path)
    assert done.stdout.split() == ["MissingExtra", "http"], done.stderr


def test_importing_the_property_kit_without_hypothesis_names_the_testing_extra(
        tmp_path: Path) -> None:
    done = _python("try:\n    import statemachines.testing\nexcept ImportError as err:\n"
                   "    print(type(err).__name__, err.extra)\n", tmp_path)
    assert done.stdout.split() == ["MissingExtra", "testing"], done.stderr


def test_the_protocol_tls_and_limits_import_without_the_http_extra(tmp_path: Path) -> None:
    done = _python("import statemachines, statemachines.observability\n"
                   "from statemachines.http import PROTOCOL_VERSION, ClientTls, HostLimits\n"
                   "print(PROTOCOL_VERSION, HostLimits().max_connections)\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "200"]


def test_a_missing_module_that_no_extra_installs_is_not_passed_off_as_one() -> None:
    ours = ModuleNotFoundError("No module named 'starlette'", name="starlette")
    other = ModuleNotFoundError("No module named 'statemachines.nowhere'",
                                name="statemachines.nowhere")
    assert isinstance(extra_missing(ours, "http", "x"), MissingExtra)
    assert extra_missing(other, "http", "x") is other
