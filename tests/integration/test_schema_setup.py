"""Creating, checking and upgrading the schema: atomic, resumable, and never on a foreign file."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from persistence import SqlStore, connect, open_store
from persistence.schema import metadata
from persistence.schema_version import (
    HEAD,
    MIGRATIONS,
    VERSION_TABLE,
    NoSchema,
    NotAnEndactionDatabase,
    SchemaMismatch,
    upgrade,
)
from tests.conftest import POSTGRES_ENV, drop_endaction_tables


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "version_table": VERSION_TABLE,
            # The example's ledger table is the example's, not endaction's schema.
            "include_name": lambda name, kind, parent: not (kind == "table" and name == "images"),
        })
        return list(compare_metadata(context, metadata))


def test_head_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_a_fresh_schema_is_exactly_the_tables_the_store_writes(store: SqlStore) -> None:
    assert _schema_differences(store.engine) == []


def test_an_upgraded_version_1_database_equals_a_fresh_one(tmp_path: Path) -> None:
    """Version 1 as endaction 0.1 made it (its own version table, no Alembic)."""
    path = tmp_path / "v1.db"
    engine = connect(str(path), make_folder=True)
    _create_version_1(engine)
    with pytest.raises(SchemaMismatch, match="run `endaction db upgrade"):
        open_store(str(path))
    before, after = upgrade(engine, str(path))
    assert (before.revision, after.revision) == ("0001", HEAD)
    assert _schema_differences(engine) == []
    open_store(str(path)).dispose()
    engine.dispose()


def _create_version_1(engine: Engine) -> None:
    """The 0.1 schema: the first migration, minus Alembic's own bookkeeping."""
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        from alembic import command

        command.upgrade(config, "0001")
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def test_a_newer_schema_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "endaction.db"
    open_store(str(path)).dispose()
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0099'")
    with pytest.raises(SchemaMismatch, match="schema 0099, newer than this endaction's"):
        open_store(str(path))


def test_an_empty_database_is_not_created_when_only_reading(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(NoSchema, match="holds no endaction schema"):
        open_store(str(path), create=False)
    assert path.read_bytes() == b""


@pytest.mark.parametrize("tables", [
    ["CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"],
    ["CREATE TABLE commands (id TEXT PRIMARY KEY, line TEXT)"],
])
def test_another_applications_sqlite_file_is_refused_untouched(tmp_path: Path,
                                                               tables: list[str]) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        for statement in tables:
            db.execute(statement)
    before = _digest(path)
    with pytest.raises(NotAnEndactionDatabase, match="is not an endaction database"):
        open_store(str(path))
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"], "no -wal or -shm file"


def test_a_file_that_is_no_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 100)
    with pytest.raises(NotAnEndactionDatabase, match="is not a SQLite database"):
        open_store(str(path))
    assert path.read_text() == "shopping list\n" * 100


def test_a_failure_half_way_through_creation_leaves_the_database_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old set-up wrote tables and the version row in two transactions.

    Killed between them, every later run refused the database for good.
    """
    import persistence.schema_version as schema_version

    path = tmp_path / "endaction.db"
    real = schema_version._run_migrations

    def half_way(conn: object, before: object) -> None:
        real(conn, before)  # type: ignore[arg-type]
        raise RuntimeError("killed after the tables, before the commit")

    monkeypatch.setattr(schema_version, "_run_migrations", half_way)
    with pytest.raises(RuntimeError):
        open_store(str(path))
    monkeypatch.undo()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    open_store(str(path)).dispose()


CREATE = "from persistence import open_store; open_store({path!r}).dispose()"


@pytest.mark.slow
def test_sigkill_at_random_moments_of_first_time_setup_never_poisons_the_database(
    tmp_path: Path,
) -> None:
    """Kill a process creating the schema at moments spread over its whole run, again and again.

    After each kill the database is either empty or complete, and opens.
    """
    probe = tmp_path / "probe.db"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CREATE.format(path=str(probe))], check=True)
    whole = time.perf_counter() - started
    outcomes = {"empty": 0, "complete": 0}
    for trial in range(12):
        path = tmp_path / f"trial{trial}.db"
        process = subprocess.Popen([sys.executable, "-c", CREATE.format(path=str(path))])
        time.sleep(whole * (0.55 + 0.45 * trial / 11))  # imports take most of the run
        process.send_signal(signal.SIGKILL)
        process.wait()
        if path.exists():
            with sqlite3.connect(path) as db:
                names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            outcomes["complete" if VERSION_TABLE in names else "empty"] += 1
            assert not names or VERSION_TABLE in names, f"trial {trial}: half a schema {names}"
        store = open_store(str(path))
        assert inspect(store.engine).has_table("commands")
        store.dispose()
    print(f"killed set-up 12 times: {outcomes}")


@pytest.mark.postgres
def test_two_processes_creating_the_schema_at_once_both_succeed() -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    engine = connect(url)
    drop_endaction_tables(engine)
    engine.dispose()
    code = CREATE.format(path=url)
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
    errors = [p.communicate()[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    store = open_store(url)
    assert _schema_differences(store.engine) == []
    store.dispose()


def test_db_upgrade_creates_upgrades_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from statemachines.cli.main import cli

    path = tmp_path / "v1.db"
    engine = connect(str(path), make_folder=True)
    _create_version_1(engine)
    engine.dispose()
    runner = CliRunner()
    refused = runner.invoke(cli, ["demo", "--images", "1", "--db", str(path),
                                  "--storage", str(tmp_path / "s")])
    assert refused.exit_code == 2 and "endaction db upgrade --db" in refused.output
    upgraded = runner.invoke(cli, ["db", "upgrade", "--db", str(path)])
    assert upgraded.exit_code == 0 and f"from endaction schema 0001 to {HEAD}" in upgraded.output
    again = runner.invoke(cli, ["db", "upgrade", "--db", str(path)])
    assert again.exit_code == 0 and f"already has endaction schema {HEAD}" in again.output
    fresh = runner.invoke(cli, ["db", "upgrade", "--db", str(tmp_path / "new.db")])
    assert fresh.exit_code == 0 and f"created endaction schema {HEAD}" in fresh.output


@pytest.mark.postgres
def test_db_upgrade_never_prints_the_password() -> None:
    from click.testing import CliRunner
    from sqlalchemy.engine import make_url

    from statemachines.cli.main import cli

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    with_password = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1)).set(
        password="s3cret-pass").render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", with_password])
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.output and "***" in result.output
