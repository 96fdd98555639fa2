"""Starting a command: validate it, then execute it, or refuse it.

Both hooks are user code, so both run contained: a validate that raises refuses the command,
an execute that raises fails it; either way its end group takes the failure path, and the
engine and the other roots go on.
"""

from __future__ import annotations

import logging

from ..errors import UnknownCommandType
from ..machines.command_machine import COMMAND_MACHINE, CommandTrigger, HookPhase, Outcome
from ..records.records import CommandRecord
from .containment import contain
from .tick_access import hook
from .tick_state import TickState, for_root
from .verdicts import fail_group

log = logging.getLogger("endaction.engine")


def start_command(state: TickState, record: CommandRecord) -> None:
    """Validate and execute a due command, as work of its root's.

    Whatever the engine raises while starting it is its root's fault and holds that root
    only (`for_root`).
    """
    with for_root(record.root_id):
        validate_and_execute(state, record)


def validate_and_execute(state: TickState, record: CommandRecord) -> None:
    """Run a not-started command's validate, then its execute, each contained.

    Problems that validate names (or that it raises) refuse the command; an execute that
    raises fails it and its end group. A command that started work in its first step and
    takes steps waits in `stepping`; any other has executed. Either way its group is touched,
    to be checked for fan-in.
    """
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
    record.step = 1
    state.report.commands_executed += 1
    with contain() as contained:
        command, ctx = hook(state, record, HookPhase.EXECUTE)
        command.execute(ctx)
    if contained.failed:
        cause = f"execute raised {contained.describe()}"
        log.warning("%s %s: %s", record.type, record.id, cause)
        fire(record, COMMAND_MACHINE, CommandTrigger.FAIL_EXECUTION, cause)
        fail_group(state, record, cause)
    elif ctx.spawned and command.takes_steps():
        fire(record, COMMAND_MACHINE, CommandTrigger.STEPPED, "step 1")
        view.mark_stepping(record)
    else:
        fire(record, COMMAND_MACHINE, CommandTrigger.EXECUTED)
    view.touched_groups.add(record.end_group_id)


def refuse(state: TickState, record: CommandRecord, problems: list[str]) -> None:
    """A command that will not run: it ends at once, and its whole end group fails."""
    view = state.view
    record.outcome = Outcome.REFUSED
    view.not_started.pop(record.id, None)
    fail_group(state, record, "; ".join(problems))
    state.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.REFUSE, record.error)
    view.touched_groups.add(record.end_group_id)
    state.on_terminal(record)


