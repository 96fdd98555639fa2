"""One tick's transactional work: apply the agents' answers, execute, fan in, end, settle.

A `Tick` lives for one transaction and holds everything that lives that long (its
`TickState`: the transaction, the moment, the report, the rows to write), so none of it can
leak into the next tick or be missing in this one. Its parts live in modules of their own,
by what they do: `task_answers` (the agents' answers and the deadlines; `retries`),
`execution` (validate and execute), `steps` (the next step of a command in steps),
`group_end` (fan-in and ends), `rollback` (settling failures), `cancellation` and `cleanup`
(what operators ask for). They move records only through the state's
`Recorder`, call user code only through `contain`, and write through the store transaction;
if anything escapes, the engine rolls the transaction back and rebuilds its view from the
store.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ports.store_protocol import StoreTransaction
from ..records.revert_state import ResourceRevert
from ..records.tick_report import TickReport
from .agent_calls import AgentAnswers
from .cancellation import act_on_cancels
from .cleanup import start_cleanup
from .engine_view import EngineView
from .execution import start_command
from .group_end import end_groups, ready_groups
from .recorder import Changes
from .rollback import drain
from .steps import run_due_steps
from .task_answers import apply, enforce_deadlines
from .tick_state import EngineConfig, TickState


class Tick:
    """The transactional phase of one engine tick; `tx` is open for as long as it lives."""

    def __init__(self, config: EngineConfig, view: EngineView, tx: StoreTransaction,
                 changes: Changes, now: float, report: TickReport) -> None:
        self.state = TickState(config, view, tx, changes, now, report)

    @property
    def wrote(self) -> bool:
        """Whether this tick moved anything; only then is it counted as a committed tick.

        A tick that wrote only `recover` rows moved nothing.
        """
        return self.state.wrote

    def run(self, answers: AgentAnswers, cancels: bool = True) -> None:
        """Everything a tick does inside its transaction, in order.

        The cancel requests are read when `cancels` (a worker reads them when woken and every
        claim_interval).
        """
        state = self.state
        apply(state, answers)
        enforce_deadlines(state)
        if cancels:
            act_on_cancels(state)
        self._advance()

    def start_cleanup(self, skip: Callable[[str], bool] = lambda root_id: False
                      ) -> list[ResourceRevert]:
        """An operator's cleanup in this tick's transaction (`cleanup.start_cleanup`)."""
        return start_cleanup(self.state, skip)

    def flush(self) -> None:
        """Write what the tick changed into its transaction; the engine calls it before commit."""
        self.state.flush()

    def _advance(self) -> None:
        """Execute due commands, take the next steps whose work ended, and end ready groups.

        This goes round after round, until none has anything left or the tick has done
        `max_rounds_per_tick` rounds (the rest is due at once, in the next tick).
        """
        state = self.state
        view = state.view
        resettled = [record for record in map(view.commands.get, sorted(view.resettle))
                     if record is not None]
        view.resettle.clear()
        # Their hooks read their resources, thousands of them when a rollback was left for
        # this tick by the one before: in one go, for as many as this tick will settle
        # (`drain` leaves the others for the next, Limits.max_opposite_commands_per_tick).
        state.prefetch(resettled[:state.config.limits.max_opposite_commands_per_tick])
        state.to_settle.extend(resettled)
        drain(state)
        for _ in range(state.config.limits.max_rounds_per_tick):
            due = view.due_commands(state.now)
            state.prefetch(due)
            for record in due:
                start_command(state, record)
            drain(state)
            stepped = run_due_steps(state)
            groups = ready_groups(state)
            if groups:
                end_groups(state, groups)
                drain(state)
            view.touched_groups.update(stepped.difference(groups))
            if not due and not stepped and not groups:
                return
