"""An engine starting up loads what is unfinished through the partial indexes of unfinished rows.

It does not scan every command and task ever run, and it loads exactly those rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from persistence import SqlStore
from statemachines import CommandStatus, TaskStatus
from tests.worlds import World


def _load_statements(store: SqlStore) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and (
                "FROM commands" in statement or "FROM async_tasks" in statement):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.load_active()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return seen


def test_start_up_reads_unfinished_rows_through_their_partial_indexes(store: SqlStore) -> None:
    world = World(store)
    engine = world.engine()
    done = world.submit_vm(engine, 3)
    engine.run_until_idle()
    running = world.submit_vm(engine, 2, vm="vm-running")
    engine.tick()
    active = store.load_active()
    assert {c.root_id for c in active.commands} == {running}
    assert all(c.status not in (CommandStatus.ENDED_SUCCESS, CommandStatus.ENDED_FAILURE)
               for c in active.commands)
    assert all(t.status != TaskStatus.CLEARED for t in active.tasks)
    assert store.command(done).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]

    statements = _load_statements(store)
    assert len(statements) == 2
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            if conn.dialect.name == "sqlite":
                plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters))
            else:  # a tiny table is scanned whatever the indexes: ask whether it can be used
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " ".join(str(row[0]) for row in conn.exec_driver_sql(
                    f"EXPLAIN {statement}", parameters))
            assert "ix_commands_active" in plan or "ix_async_tasks_active" in plan, plan
