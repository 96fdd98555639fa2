"""The examples of the README and the docs say what they do.

The README's test command is the one CI uses. (That every block runs at all is tests/docs/; these
check what the blocks print and what they leave in the database.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
TUTORIAL = (ROOT / "docs" / "tutorial" / "first-command.md").read_text()
PROPERTY_HOWTO = (ROOT / "docs" / "how-to" / "property-testing.md").read_text()
APP_HOWTO = (ROOT / "docs" / "how-to" / "your-own-app.md").read_text()
PAGES = README + TUTORIAL + PROPERTY_HOWTO + APP_HOWTO

BLOCKS = re.findall(r"```python\n(.*?)```", PAGES, flags=re.S)


# The README's example, which the tutorial starts with too.
LIBRARY = [b for b in BLOCKS if "NetworkHost(refuse=" in b]
OWN_DOMAIN = [b for b in BLOCKS if "class PublishSite(Command)" in b]
PROPERTY_SUITE = [b for b in BLOCKS if "engine_machine(scenario)" in b]
APPLICATION = [b for b in BLOCKS if b.startswith("# sites_app.py")]
APP_SHELL = [b for b in re.findall(r"```sh\n(.*?)```", APP_HOWTO, flags=re.S)
             if "ENDACTION_APP=sites_app:app" in b]


def test_the_examples_are_found() -> None:
    assert len(OWN_DOMAIN) == len(PROPERTY_SUITE) == len(APPLICATION) == len(APP_SHELL) == 1
    assert len(LIBRARY) == 2 and LIBRARY[0] == LIBRARY[1], "the README's and the tutorial's"


def _printed(block: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    namespace: dict[str, object] = {}
    exec(compile(block, "docs example", "exec"), namespace)
    return capsys.readouterr().out.splitlines()


def _said(block: str) -> list[str]:
    """What the block's comments say its prints print."""
    return [line.split("  # ", 1)[1].strip() for line in block.splitlines()
            if line.startswith("print(") and "  # " in line]


def test_library_example_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    printed = _printed(LIBRARY[0], capsys)
    assert printed[0] == _said(LIBRARY[0])[0]
    assert printed[1].startswith("[(1, 'allocate_address', None), (2, 'create_dns_record', "
                                 "'10.0.0.1')")
    assert printed[2] == "[('DeleteDnsRecord', 'reverted'), ('ReleaseAddress', 'reverted'), " \
                         "('UnplugPort', 'reverted')]"


def test_own_domain_example_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    printed = _printed(OWN_DOMAIN[0], capsys)
    assert printed[:2] == _said(OWN_DOMAIN[0])[:2]
    assert printed[2] == "[Site(name='docs.example.org', root_id=" + repr(
        printed[2].split("root_id='")[1].split("'")[0]) + ", serial='c0001')]"


def test_property_suite_example_runs_against_the_example_commands() -> None:
    """The snippet users copy builds a working state machine: run a few examples of it."""
    namespace: dict[str, object] = {}
    exec(compile(PROPERTY_SUITE[0], "docs/how-to/property-testing.md", "exec"), namespace)
    machine = namespace["MyCommandsMachine"]
    assert isinstance(machine, type) and issubclass(machine, RuleBasedStateMachine)
    run_state_machine_as_test(machine, settings=settings(max_examples=5, deadline=None,
                                                         derandomize=True))


def test_ci_runs_the_readme_test_command() -> None:
    test_command = ".venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest"
    assert test_command in README
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_the_application_example_runs_with_the_cli_as_written(tmp_path: Path) -> None:
    """The example's blocks become files, and its shell commands run beside them.

    sites.py is the own-domain block up to its `registry =` line, sites_app.py the application
    block; the shell block's commands run in that directory, as separate processes, and the database
    says what they did.
    """
    import os
    import signal
    import subprocess
    import sys

    from persistence import open_store

    domain = OWN_DOMAIN[0].split("\nregistry = CommandRegistry")[0]
    (tmp_path / "sites.py").write_text(domain)
    (tmp_path / "sites_app.py").write_text(APPLICATION[0])
    env = {**os.environ, "ENDACTION_APP": "sites_app:app", "ENDACTION_DB": "sites.db"}
    lines = [line.split("#")[0].strip() for line in APP_SHELL[0].splitlines()]
    commands = [[word for word in line.split()[1:] if word != "&"]
                for line in lines if line.startswith("endaction ")]
    assert [c[0] for c in commands] == ["submit", "worker", "status", "list"]

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "statemachines.cli", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    submitted = run([a.strip("'") for a in commands[0][:2]] + ["--params",
                    '{"site": "docs.example.org"}', "--key", "docs"])
    assert submitted.returncode == 0, submitted.stderr
    worker = subprocess.Popen([sys.executable, "-m", "statemachines.cli", *commands[1]],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        waited = run([*commands[2], "--timeout", "60"])
    finally:
        worker.send_signal(signal.SIGTERM)
        log, _ = worker.communicate(timeout=60)
    assert waited.returncode == 0, waited.stdout + waited.stderr + log
    assert worker.returncode == 0, log
    listed = run(commands[3])
    assert listed.returncode == 0 and submitted.stdout.strip() in listed.stdout
    store = open_store(str(tmp_path / "sites.db"), create=False)
    try:
        root = store.command(submitted.stdout.strip())
        assert root is not None
        assert (root.status, dict(root.output)) == ("ended_success", {"serial": "c0001"})
    finally:
        store.dispose()
