"""Starting a command: validate it, then execute it, or refuse it.

Both hooks are user code, so both run contained: a validate that raises refuses the command,
an execute that raises fails it; either way its end group takes the failure path, and the
engine and the other roots go on.
"""

from __future__ import annotations

import logging

from .command_machine import COMMAND_MACHINE, CommandTrigger, HookPhase, Outcome
from .containment import contain
from .errors import UnknownCommandType
from .hook_context import hook
from .records import CommandRecord
from .tick_state import TickState, for_root

log = logging.getLogger("endaction.engine")


def start_command(state: TickState, record: CommandRecord) -> None:
    with for_root(record.root_id):
        validate_and_execute(state, record)


def validate_and_execute(state: TickState, record: CommandRecord) -> None:
    view, fire = state.view, state.recorder.fire
    del view.not_started[record.id]
    problems: list[str] = []
    with contain() as contained:
        command, ctx = hook(state, record, HookPhase.VALIDATE)
        problems = command.validate(ctx)
    if isinstance(contained.error, UnknownCommandType):
        problems = [str(contained.error)]
    elif contained.failed:
        problems = [f"validate raised {contained.describe()}"]
    if problems:
        refuse(state, record, problems)
        return
    fire(record, COMMAND_MACHINE, CommandTrigger.EXECUTE)
    state.report.commands_executed += 1
    with contain() as contained:
        command, ctx = hook(state, record, HookPhase.EXECUTE)
        command.execute(ctx)
    if contained.failed:
        record.error = f"execute raised {contained.describe()}"
        log.warning("%s %s: %s", record.type, record.id, record.error)
        fire(record, COMMAND_MACHINE, CommandTrigger.FAIL_EXECUTION, record.error)
    else:
        fire(record, COMMAND_MACHINE, CommandTrigger.EXECUTED)
    view.touched_groups.add(record.end_group_id)


def refuse(state: TickState, record: CommandRecord, problems: list[str]) -> None:
    """A command that will not run: it ends at once, and its whole end group fails."""
    view = state.view
    record.outcome = Outcome.REFUSED
    record.error = "; ".join(problems)
    view.not_started.pop(record.id, None)
    state.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.REFUSE, record.error)
    head = view.commands.get(record.end_group_id)
    if head is not None and head is not record:
        head.work_succeeded = False
        state.recorder.touch(head)
    view.touched_groups.add(record.end_group_id)
    state.on_terminal(record)


