"""The copies of records that hooks read, so that a hook writing to one changes nothing.

A hook gets its command's record, its tasks and its children as copies: a hook that sets a
status or an execution reason on what it reads must not move the engine's own records.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter

from ..records.records import CommandRecord, TaskRecord

_COMMAND_FIELDS = attrgetter(*(f.name for f in fields(CommandRecord)))
_TASK_FIELDS = attrgetter(*(f.name for f in fields(TaskRecord)))


def copy_record(record: CommandRecord) -> CommandRecord:
    """A copy of a command's record, made for every hook call.

    There are 70,000 of them in a 10,000-disk rollback: positional construction is several
    times cheaper than `dataclasses.replace`, which goes through keyword arguments.
    """
    return CommandRecord(*_COMMAND_FIELDS(record))


def copy_task(task: TaskRecord) -> TaskRecord:
    """What a hook reads of a task: a copy, so that writing to it changes nothing."""
    return TaskRecord(*_TASK_FIELDS(task))
