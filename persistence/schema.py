"""The tables, in SQLAlchemy Core, not the ORM.

The engine writes whole ticks with executemany, and rows map one-to-one onto the plain records
the machines move.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.core.machines.task_machine import TaskStatus
from statemachines.core.records.records import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_OBJECT_ID_LENGTH,
    MAX_SUBMIT_KEY_LENGTH,
)

metadata = MetaData()

#: The unfinished rows, as literal SQL: a partial index serves a query only when the query
#: states the index's condition itself (SQLite matches the terms; a bound parameter in
#: their place would not match), so the index and `load_active` share these texts.
ACTIVE_COMMANDS = "status NOT IN ({})".format(
    ", ".join(f"'{s.value}'" for s in TERMINAL_COMMAND_STATES))
ACTIVE_TASKS = f"status != '{TaskStatus.CLEARED.value}'"
#: Root commands, as literal SQL for the same reason: the listing's partial indexes.
ROOTS = "parent_id IS NULL"
#: Every other command: what the index of parents holds (schema 0008).
CHILDREN = "parent_id IS NOT NULL"
#: Roots submitted with a key, and the unique index of their keys: its name is how a write
#: that lost a race for a key is told from any other refused write (persistence/db_errors.py).
KEYED = "submit_key IS NOT NULL"
SUBMIT_KEY_INDEX = "ix_commands_submit_key"

ID = String(MAX_OBJECT_ID_LENGTH)

commands = Table(
    "commands",
    metadata,
    Column("id", ID, primary_key=True),
    Column("root_id", ID, nullable=False, index=True),
    Column("parent_id", ID, ForeignKey("commands.id"), nullable=True),
    Column("end_group_id", ID, nullable=False),
    Column("type", String(MAX_ID_LENGTH), nullable=False),
    Column("status", String(32), nullable=False),
    Column("execution_reason", String(32), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("entity_type", String(MAX_NAME_LENGTH)),
    Column("entity_id", String(MAX_ID_LENGTH)),
    Column("work_succeeded", Boolean),
    Column("outcome", String(32)),
    Column("error", Text),
    Column("not_before", Float, nullable=False, default=0.0),
    Column("end_attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False, default=0),
    # Schema 0007: steps, the command's own verdict, its output and the resources it made
    # beyond its entity (JSON text, NULL for none).
    Column("step", Integer, nullable=False, default=0, server_default="0"),
    Column("own_work_succeeded", Boolean),
    Column("output", Text),
    Column("resources", Text),
    # Schema 0008: the key a client submitted a root under (NULL for most roots and every
    # child); unique, so that of two clients racing with one key only one root is written.
    Column("submit_key", String(MAX_SUBMIT_KEY_LENGTH)),
    # A command's children (`parent_id = ?` implies the condition). Children only since
    # 0008: with the roots in it too, SQLite served `parent_id IS NULL` from it, reading
    # every root and sorting them, instead of a page of the listing's indexes below.
    Index("ix_commands_children", "parent_id", sqlite_where=text(CHILDREN),
          postgresql_where=text(CHILDREN)),
    # Unfinished commands only: what an engine loads when it starts (a full scan of every
    # command ever run otherwise; no query reads commands by status alone).
    Index("ix_commands_active", "root_id", sqlite_where=text(ACTIVE_COMMANDS),
          postgresql_where=text(ACTIVE_COMMANDS)),
    # Schema 0008: the roots newest first, all of them or by status or type, as `endaction
    # list` pages through them (keyset on created_at, id); roots only, a small share of rows.
    Index("ix_commands_roots", "created_at", "id", sqlite_where=text(ROOTS),
          postgresql_where=text(ROOTS)),
    Index("ix_commands_roots_status", "status", "created_at", "id", sqlite_where=text(ROOTS),
          postgresql_where=text(ROOTS)),
    Index("ix_commands_roots_type", "type", "created_at", "id", sqlite_where=text(ROOTS),
          postgresql_where=text(ROOTS)),
    # Keyed rows only: the children and keyless roots, nearly every row, cost the index
    # nothing on insert. `submit_key = ?` implies the condition, so look-ups use it.
    Index(SUBMIT_KEY_INDEX, "submit_key", unique=True, sqlite_where=text(KEYED),
          postgresql_where=text(KEYED)),
)

async_tasks = Table(
    "async_tasks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("command_id", ID, ForeignKey("commands.id"), nullable=False, index=True),
    Column("root_command_id", ID, nullable=False, index=True),
    Column("agent", String(MAX_NAME_LENGTH), nullable=False),
    Column("verb", String(MAX_NAME_LENGTH), nullable=False),
    # The id the agent knows the task by; the engine generates it, so it equals `id`.
    Column("agent_task_id", ID, nullable=False),
    Column("status", String(32), nullable=False),
    Column("host_status", String(32)),
    Column("host_result", String(32)),
    Column("message", Text),
    Column("parameters", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retry_at", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False, default=0),
    Index("ix_async_tasks_active", "root_command_id", sqlite_where=text(ACTIVE_TASKS),
          postgresql_where=text(ACTIVE_TASKS)),
    # When a task still polling is aborted on its agent; 0 means never.
    Column("deadline", Float, nullable=False, default=0.0, server_default="0"),
    # Schema 0007: the step of its command that started it, which attempt of its work it is,
    # whether a later attempt replaced it, its retry policy and its output (JSON text).
    Column("step", Integer, nullable=False, default=1, server_default="1"),
    Column("attempt", Integer, nullable=False, default=1, server_default="1"),
    Column("retried", Boolean, nullable=False, default=False, server_default=false()),
    Column("retry_policy", Text),
    Column("output", Text),
)

async_task_entities = Table(
    "async_task_entities",
    metadata,
    Column("task_id", ID, ForeignKey("async_tasks.id"), primary_key=True),
    Column("entity_type", String(MAX_NAME_LENGTH), primary_key=True),
    Column("entity_id", String(MAX_ID_LENGTH), primary_key=True),
)

# The history as schema 0001 to 0005 wrote it, one row per transition or (0005) per object per
# tick; read, never written since 0006.
transitions = Table(
    "transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object_kind", String(16), nullable=False),
    Column("object_id", ID, nullable=False, index=True),
    Column("root_id", ID, nullable=False, index=True),
    Column("trigger", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("dest", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("detail", Text),
    # NULL: the row is one step. Otherwise the JSON list [[trigger, dest, detail], ...] of the
    # steps the object took in one tick, from `source`; trigger, dest and detail are the last
    # step's (see persistence/history_rows.py).
    Column("path", Text),
)

# The history since schema 0006: one row per root per tick, every object's path in `steps`
# as JSON (see persistence/history_segments.py). `transitions` keeps what was written before.
history_segments = Table(
    "history_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("root_id", ID, nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("steps", Text, nullable=False),
    # Schema 0009: the worker or engine whose transaction wrote it (NULL: a client, or
    # written before 0009).
    Column("actor", String(200)),
)

resource_reverts = Table(
    "resource_reverts",
    metadata,
    Column("resource_type", String(MAX_NAME_LENGTH), primary_key=True),
    Column("resource_id", String(MAX_ID_LENGTH), primary_key=True),
    # The command whose work made the resource: a name reused later starts a fresh state.
    Column("owner_id", ID, primary_key=True),
    Column("state", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("updated_at", Float, nullable=False),
    # Attempts whose outcome was lost with a dead engine or host: redone, within their own bound.
    Column("lost", Integer, nullable=False, default=0, server_default="0"),
)

# Deployment facts that must not change under work in flight, such as where the local-disk
# agent keeps the files that this database's tasks refer to.
settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# Roots an operator asked to cancel: a row of its own, so the request never races the
# engine's version-checked writes of the root.
cancel_requests = Table(
    "cancel_requests",
    metadata,
    Column("root_id", ID, ForeignKey("commands.id"), primary_key=True),
    Column("requested_at", Float, nullable=False),
    Column("reason", Text, nullable=False),
)

# Roots the engine could not process (an engine fault their commands trigger): held with the
# error instead of failing every tick of every other root.
held_roots = Table(
    "held_roots",
    metadata,
    Column("root_id", ID, ForeignKey("commands.id"), primary_key=True),
    Column("held_at", Float, nullable=False),
    Column("error", Text, nullable=False),
)

# Roots whose trees still have work, leased to the worker that runs them: several workers on
# one PostgreSQL database each claim their own (owner, expiry), and a dead one's lapse.
root_leases = Table(
    "root_leases",
    metadata,
    Column("root_id", ID, ForeignKey("commands.id"), primary_key=True),
    Column("owner", String(200)),
    Column("expires", Float, nullable=False, default=0.0, server_default="0"),
)
