"""The command line as an application's.

It covers `--app`, submits with keys and large parameters, `list`, logging options, environment
variables, exit statuses, and the refusals the docs promise. In-process (click's runner) against
real SQLite files; the end state is read from the database.
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from persistence import open_store
from statemachines.cli.main import cli
from statemachines.cli.params_input import MAX_PARAMS_BYTES, read_params
from statemachines.example.network import NETWORK_LEDGERS, endpoint_parameters
from tests.cli.test_cli_errors import one_line_error

NETWORK = "statemachines.example.network:app"


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin)


def _endpoint(i: int, switch: str = "sw1") -> str:
    return json.dumps(endpoint_parameters(f"svc{i}", f"svc{i}.example.org",
                                          f"{switch}/ge-0/{i}", pool="10.0.0.0/24"))


@pytest.mark.parametrize(("spec", "says"), [
    ("", "--app must not be empty"),
    ("not a spec", "is not 'module:attribute'"),
    ("no_such_module_here:app", "no module named 'no_such_module_here'"),
    ("statemachines.example.network:nothing", "has no attribute 'nothing'"),
    ("statemachines.example.network:network_registry", "is a function, not a statemachines.App"),
])
def test_a_bad_app_is_one_line_naming_it(spec: str, says: str, tmp_path: Path) -> None:
    result = invoke("status", "--app", spec, "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2, result.output
    assert says in one_line_error(result)


def test_an_app_module_that_raises_on_import_is_named(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('no config file')\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("list", "--app", "broken_app:app")
    assert result.exit_code == 2
    assert "importing broken_app raised RuntimeError: no config file" in one_line_error(result)


def test_the_app_comes_from_the_environment_too(tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    env = {"ENDACTION_APP": NETWORK}
    submitted = invoke("submit", "ProvisionEndpoint", "--params", _endpoint(1), "--db", db,
                       env=env)
    assert submitted.exit_code == 0, submitted.output
    root = submitted.stdout.strip()
    # Without the variable, the VM application: the database is the network one's.
    refused = invoke("submit", "ProvisionEndpoint", "--params", _endpoint(2), "--db", db)
    assert refused.exit_code == 2
    assert "belongs to application 'network', not 'vm'" in one_line_error(refused)
    store = open_store(db, create=False, ledgers=NETWORK_LEDGERS)
    try:
        assert [r.id for r in store.list_roots()] == [root]
    finally:
        store.dispose()


def test_a_key_makes_a_submit_idempotent_and_other_parameters_are_refused(
        tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    first = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(1),
                   "--key", "order-17", "--db", db)
    again = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(1),
                   "--key", "order-17", "--db", db)
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert first.stdout == again.stdout
    other = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(2),
                   "--key", "order-17", "--db", db)
    assert other.exit_code == 2
    assert first.stdout.strip() in one_line_error(other)  # it names the root of the key
    store = open_store(db, create=False, ledgers=NETWORK_LEDGERS)
    try:
        assert len(store.list_roots()) == 1
    finally:
        store.dispose()


def test_parameters_come_from_a_file_or_standard_input(tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    (tmp_path / "p.json").write_text(_endpoint(1))
    from_file = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params",
                       f"@{tmp_path / 'p.json'}", "--db", db)
    from_stdin = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", "-",
                        "--db", db, stdin=_endpoint(2))
    assert from_file.exit_code == from_stdin.exit_code == 0, from_file.output + from_stdin.output
    store = open_store(db, create=False, ledgers=NETWORK_LEDGERS)
    try:
        services = sorted(str(store.command(r.id).parameters["service"])  # type: ignore[union-attr]
                          for r in store.list_roots())
    finally:
        store.dispose()
    assert services == ["svc1", "svc2"]


@pytest.mark.parametrize(("make", "says"), [
    (lambda d: "@" + str(d / "missing.json"), "no such file"),
    (lambda d: "@" + str(d), "is a directory"),
    (lambda d: "[1, 2]", "must be a JSON object, not list"),
    (lambda d: "{", "is not JSON"),
])
def test_bad_parameters_are_one_line(make: object, says: str, tmp_path: Path) -> None:
    value = make(tmp_path)  # type: ignore[operator]
    result = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", value,
                    "--db", str(tmp_path / "net.db"))
    assert result.exit_code == 2
    assert says in one_line_error(result)


def test_parameters_beyond_the_limit_are_refused_before_they_are_read_whole() -> None:
    class Endless(io.RawIOBase):
        """A producer that never stops: the reader must stop at the limit."""

        given = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            buffer[:] = b" " * len(buffer)
            self.given += len(buffer)
            return len(buffer)

    stream = Endless()
    with pytest.raises(Exception, match=f"larger than {MAX_PARAMS_BYTES:,} bytes"):
        read_params("-", stdin=io.BufferedReader(stream))
    assert stream.given <= MAX_PARAMS_BYTES + 2 * io.DEFAULT_BUFFER_SIZE + 1


def test_a_large_request_fits_through_a_file(tmp_path: Path) -> None:
    big = {"tenant": "t", "notes": ["x" * 100] * 50_000}  # 5 MB: far past a command line
    (tmp_path / "big.json").write_text(json.dumps(big))
    assert read_params(f"@{tmp_path / 'big.json'}") == big


def test_list_shows_roots_newest_first_filtered_and_paged(tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    ids = []
    for i in range(5):
        ran = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params",
                     _endpoint(i), "--db", db)
        assert ran.exit_code == 0, ran.output
        ids.append(ran.stdout.strip())
    page = invoke("list", "--app", NETWORK, "--db", db, "--limit", "2", "--json")
    assert page.exit_code == 0, page.output
    first = json.loads(page.stdout)
    assert [r["id"] for r in first["roots"]] == ids[::-1][:2]
    assert first["roots"][0]["status"] == "not_started"
    seen = [r["id"] for r in first["roots"]]
    cursor = first["next"]
    while cursor is not None:
        more = json.loads(invoke("list", "--app", NETWORK, "--db", db, "--limit", "2",
                                 "--before", cursor, "--json").stdout)
        seen += [r["id"] for r in more["roots"]]
        cursor = more["next"]
    assert seen == ids[::-1]
    text = invoke("list", "--app", NETWORK, "--db", db, "--status", "not_started",
                  "--type", "ProvisionEndpoint", "--since", "1h")
    assert text.exit_code == 0 and ids[0] in text.stdout and "ProvisionEndpoint" in text.stdout
    none = invoke("list", "--app", NETWORK, "--db", db, "--status", "ended_success")
    assert none.exit_code == 0 and none.stdout.strip() == "no roots"
    future = invoke("list", "--app", NETWORK, "--db", db, "--since", "2999-01-01T00:00:00")
    assert future.stdout.strip() == "no roots"


@pytest.mark.parametrize(("args", "says"), [
    (["--since", "yesterday"], "is neither an age"),
    (["--before", "garbage"], "is not a cursor"),
    (["--status", "sleeping"], "'sleeping' is not one of"),
])
def test_list_refuses_what_it_cannot_read(args: list[str], says: str, tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(1),
           "--db", db)
    result = invoke("list", "--app", NETWORK, "--db", db, *args)
    assert result.exit_code == 2 and says in result.output


def test_status_wait_and_demo_tell_a_clean_rollback_from_a_success(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    failed = invoke("demo", "--images", "3", "--fail", "1", "--db", str(tmp_path / "f.db"),
                    "--storage", storage)
    assert failed.exit_code == 5, failed.output
    waited = invoke("status", "--wait", "--db", str(tmp_path / "f.db"))
    assert waited.exit_code == 5, waited.output
    made = invoke("demo", "--images", "2", "--db", str(tmp_path / "ok.db"), "--storage",
                  str(tmp_path / "storage2"))
    assert made.exit_code == 0, made.output
    assert invoke("status", "--wait", "--db", str(tmp_path / "ok.db")).exit_code == 0


def test_an_empty_database_variable_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENDACTION_DB", "")
    result = invoke("list")
    assert result.exit_code == 2 and "ENDACTION_DB is set but empty" in result.output
    assert not list(tmp_path.rglob("*.db"))


@pytest.mark.parametrize("db", [":memory:", "sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(db: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params",
                    _endpoint(1), "--db", db)
    assert result.exit_code == 2 and "in-memory SQLite database" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["worker", "submit", "resume", "cleanup", "cancel",
                                     "status", "list", "history", "trace", "diagrams"])
def test_every_command_takes_the_app_and_names_its_variables(command: str) -> None:
    shown = invoke(command, "--help")
    assert shown.exit_code == 0, shown.output
    assert "--app" in shown.stdout and "ENDACTION_APP" in shown.stdout
    assert "--log-level" in shown.stdout and "ENDACTION_LOG_LEVEL" in shown.stdout
    if command != "diagrams":
        assert "ENDACTION_DB" in shown.stdout


def test_the_logging_options_set_the_level(tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(1),
           "--db", db, "--log-level", "debug")
    assert logging.getLogger("endaction").level == logging.DEBUG
    invoke("list", "--app", NETWORK, "--db", db, "-q")
    assert logging.getLogger("endaction").level == logging.ERROR
    invoke("list", "--app", NETWORK, "--db", db, env={"ENDACTION_LOG_LEVEL": "info"})
    assert logging.getLogger("endaction").level == logging.INFO
    invoke("list", "--app", NETWORK, "--db", db, "-v")
    assert logging.getLogger("endaction").level == logging.INFO


def test_no_color_leaves_the_status_plain(tmp_path: Path) -> None:
    db = str(tmp_path / "d.db")
    invoke("demo", "--images", "2", "--fail", "0", "--db", db, "--storage",
           str(tmp_path / "s"))
    coloured = CliRunner().invoke(cli, ["status", "--db", db], color=True)
    plain = CliRunner().invoke(cli, ["status", "--db", db], color=True,
                               env={"NO_COLOR": "1"})
    assert "\x1b[" in coloured.stdout
    assert plain.exit_code == 0 and "\x1b[" not in plain.stdout
    assert "ended_failure" in plain.stdout


def test_the_default_app_offers_its_own_commands_and_another_app_does_not() -> None:
    assert "demo" in invoke("--help").stdout
    other = invoke("--help", env={"ENDACTION_APP": NETWORK})
    assert other.exit_code == 0 and "demo" not in other.stdout and "worker" in other.stdout


def test_the_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    import statemachines

    assert statemachines.__version__ == version("endaction")
    assert version("endaction") in invoke("--version").stdout


@pytest.mark.parametrize("command", [
    ["list"], ["status"], ["submit", "AddVmFromTemplate", "--params",
                           '{"vm": "v", "disks": [{"source": "template-disk0"}]}'],
    ["resume"], ["cleanup"], ["worker"], ["db", "upgrade"]])
def test_another_applications_database_is_refused_before_anything_is_written(
        command: list[str], tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    assert invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(1),
                  "--db", db).exit_code == 0
    before = sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master ORDER BY name").fetchall()
    result = invoke(*command, "--db", db)
    assert result.exit_code == 2, result.output
    assert "belongs to application 'network', not 'vm'" in one_line_error(result)
    connection = sqlite3.connect(db)
    try:
        after = connection.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
        roots = connection.execute("SELECT count(*) FROM commands").fetchone()
        leases = connection.execute("SELECT count(*) FROM root_leases WHERE owner IS NOT "
                                    "NULL").fetchone()
    finally:
        connection.close()
    assert after == before  # no image table made in the network's database
    assert roots == (1,) and leases == (0,)


def _app_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(
        "from statemachines import App, CommandRegistry\n" + body)


@pytest.mark.parametrize(("body", "says"), [
    ("def agents(settings):\n    raise RuntimeError('no token here')\n"
     "app = App(name='x', registry=CommandRegistry(), agents=agents)\n",
     "its agents function raised RuntimeError: no token here"),
    ("def agents(settings):\n    return {'host': 42}\n"
     "app = App(name='x', registry=CommandRegistry(), agents=agents)\n",
     "returned int for agent 'host', which has no start()"),
    ("def agents(settings):\n    return 42\n"
     "app = App(name='x', registry=CommandRegistry(), agents=agents)\n",
     "agents() returned int, not a mapping"),
    ("import sys\nsys.exit(7)\n", "called sys.exit(7)"),
])
def test_an_application_whose_own_code_fails_is_one_line(
        body: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _app_module(tmp_path, "users_app", body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "users_app", raising=False)
    result = invoke("worker", "--app", "users_app:app", "--db", str(tmp_path / "u.db"))
    assert result.exit_code == 2, result.output
    assert says in one_line_error(result)


def test_empty_settings_are_refused_not_taken_as_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    empty_app = invoke("list", env={"ENDACTION_APP": ""})
    assert empty_app.exit_code == 2 and "ENDACTION_APP is set but empty" in empty_app.output
    storage = invoke("worker", "--storage", "", "--db", str(tmp_path / "w.db"))
    assert storage.exit_code == 2 and "--storage must not be empty" in storage.output
    assert not (tmp_path / "images").exists() and not (tmp_path / "templates").exists()


def test_a_worker_may_not_take_the_single_engines_name(tmp_path: Path) -> None:
    result = invoke("worker", "--name", "single-engine", "--db", str(tmp_path / "w.db"))
    assert result.exit_code == 2 and "single engine's own lease name" in result.output
    assert not (tmp_path / "w.db").exists()


def test_the_next_page_hint_keeps_the_filters(tmp_path: Path) -> None:
    db = str(tmp_path / "net.db")
    for i in range(3):
        invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(i),
               "--db", db)
    page = invoke("list", "--app", NETWORK, "--db", db, "--limit", "1", "--status",
                  "not_started", "--since", "1h")
    hint = page.stdout.strip().splitlines()[-1]
    assert hint.startswith("more: endaction list --app statemachines.example.network:app")
    args = shlex.split(hint.removeprefix("more: endaction "))
    assert args[args.index("--status") + 1] == "not_started" and "--limit" in args
    second = invoke(*args)
    assert second.exit_code == 0 and second.stdout.count("ProvisionEndpoint") == 1


def test_a_trace_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "d.db")
    invoke("demo", "--images", "1", "--db", db, "--storage", str(tmp_path / "s"))
    store = open_store(db, create=False)
    root = store.last_root_id()
    store.dispose()
    result = invoke("trace", str(root), "--db", db, "--out", "/dev/null")
    assert result.exit_code == 2 and "cannot write the trace there" in one_line_error(result)


def test_a_host_on_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    import socket

    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        result = invoke("agent", "serve", "--storage", str(tmp_path / "s"), "--port", str(port))
    finally:
        taken.close()
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in one_line_error(result)
    assert not (tmp_path / "s").exists()  # no token, no journal for a host that cannot run


@pytest.mark.parametrize(("app", "type_name", "params"), [
    ("statemachines.example.vm:app", "RemoveImage", '{"image": "vm1-disk0"}'),
    (NETWORK, "ReleaseAddress", '{"lease": "svc1"}'),
])
def test_an_opposite_command_is_refused_as_a_root(app: str, type_name: str, params: str,
                                                  tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    result = invoke("submit", type_name, "--app", app, "--params", params, "--db", db)
    assert result.exit_code == 2, result.output
    assert f"{type_name} is an opposite command" in one_line_error(result)
    store = open_store(db, create=False)
    try:
        assert store.list_roots() == []
    finally:
        store.dispose()


def test_a_database_locked_by_another_process_says_how_long_it_waited(tmp_path: Path) -> None:
    import time

    db = str(tmp_path / "net.db")
    assert invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params", _endpoint(1),
                  "--db", db).exit_code == 0
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        started = time.monotonic()
        result = invoke("submit", "ProvisionEndpoint", "--app", NETWORK, "--params",
                        _endpoint(2), "--db", db, env={"ENDACTION_LOCK_TIMEOUT": "0.5"})
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1, result.output
    line = one_line_error(result)
    assert "database is locked" in line and "for more than 0.5 s" in line
    assert "ENDACTION_LOCK_TIMEOUT=SECONDS waits longer" in line
    assert took < 30  # bounded by the setting, not by a default of its own
    bad = invoke("list", "--app", NETWORK, "--db", db, env={"ENDACTION_LOCK_TIMEOUT": "soon"})
    assert bad.exit_code == 2 and "ENDACTION_LOCK_TIMEOUT='soon'" in bad.output


def test_two_databases_on_one_storage_directory_are_refused(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    first = invoke("demo", "--images", "1", "--db", str(tmp_path / "a.db"), "--storage", storage)
    assert first.exit_code == 0, first.output
    second = invoke("demo", "--images", "1", "--db", str(tmp_path / "b.db"), "--storage",
                    storage)
    assert second.exit_code == 2, second.output
    assert "belongs to another database" in one_line_error(second)
    # The first database's image is its own, not the second's leftover; it still runs there.
    again = invoke("demo", "--images", "1", "--db", str(tmp_path / "a.db"))
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(("args", "says"), [
    (["--agent-url", "http://127.0.0.1:1", "--agent-token-file", "t", "--agent-ca", "ca.pem"],
     "go with an https:// --agent-url"),
    (["--agent-url", "https://127.0.0.1:1", "--agent-token-file", "t", "--agent-cert", "c"],
     "--agent-cert and --agent-key go together"),
])
def test_tls_options_that_cannot_work_are_refused(args: list[str], says: str,
                                                  tmp_path: Path) -> None:
    result = invoke("worker", "--db", str(tmp_path / "w.db"), *args)
    assert result.exit_code == 2 and says in one_line_error(result)


def test_a_host_whose_tls_files_are_missing_is_refused_before_it_listens(tmp_path: Path) -> None:
    result = invoke("agent", "serve", "--storage", str(tmp_path / "s"), "--port", "0",
                    "--tls-cert", str(tmp_path / "none.pem"), "--tls-key",
                    str(tmp_path / "none.pem"))
    assert result.exit_code == 2 and "no such file" in one_line_error(result)
