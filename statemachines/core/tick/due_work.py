"""What is due, and when: the questions a tick and a waiting loop ask of the engine's view.

A loop must not sleep while something is due (a command whose `not_before` has come, a start
or a clear to retry, a deadline passed), and must not spin while nothing is: these answer
both from the view's indexes alone, without the store, so they cost nothing per tick.
"""

from __future__ import annotations

from collections import defaultdict

from ..machines.task_machine import LIVE_TASK_STATES, POLLED_TASK_STATES, TaskStatus
from ..records.limits import Limits
from ..records.records import CommandRecord, TaskRecord


class DueWork:
    """`EngineView`'s questions about time; the indexes are the view's."""

    commands: dict[str, CommandRecord]
    not_started: dict[str, CommandRecord]
    tasks: dict[str, TaskRecord]
    touched_groups: set[str]
    resettle: set[str]

    def is_idle(self, limits: Limits) -> bool:
        """Nothing left but tasks whose clears the agent refused every time."""
        return not self.commands and all(
            t.status == TaskStatus.CLEAR_FAILED and t.attempts >= limits.max_clear_attempts
            for t in self.tasks.values()
        )

    def due_commands(self, now: float) -> list[CommandRecord]:
        """The commands not started whose `not_before` has come: the ones a tick starts now."""
        return [c for c in self.not_started.values() if c.not_before <= now]

    def agent_work_due(self, task: TaskRecord, now: float, limits: Limits) -> bool:
        """A start or a clear the agent should be asked for now (polls are paced separately)."""
        if task.retry_at > now:
            return False
        if task.status == TaskStatus.CLEAR_FAILED:
            return task.attempts < limits.max_clear_attempts
        return task.status in (TaskStatus.PENDING, TaskStatus.ENDING)

    def deadline_due(self, now: float) -> bool:
        """A task past its deadline (or an abort past its grace) waits for the next tick."""
        return any(t.deadline and t.deadline <= now for t in self.tasks.values()
                   if t.status in LIVE_TASK_STATES)

    def due_now(self, now: float, limits: Limits) -> bool:
        """Whether the next tick has work at once, so that a loop must not sleep before it.

        Polls are not counted: they are paced by the poll interval (`wait_hint`).
        """
        return bool(self.touched_groups or self.resettle) or self.deadline_due(now) or any(
            c.not_before <= now for c in self.not_started.values()
        ) or any(self.agent_work_due(t, now, limits) for t in self.tasks.values())

    def wait_hint(self, now: float, poll_interval: float, limits: Limits) -> float:
        """How long nothing can become due, in seconds.

        That is until the next retry or back-off, or one poll interval while agents are working.
        """
        if any(t.status in POLLED_TASK_STATES for t in self.tasks.values()):
            return poll_interval
        due = [c.not_before for c in self.not_started.values()]
        due += [t.retry_at for t in self.tasks.values()
                if t.retry_at and self.agent_work_due(t, t.retry_at, limits)]
        if due:
            return max(0.0, min(due) - now)
        return poll_interval

    def waiting_on(self, now: float) -> str:
        """One sentence on what the engine waits for.

        It names the tasks on agents (the oldest named, with its deadline), back-offs, and
        commands due later.
        """
        parts = []
        by_agent: dict[str, list[TaskRecord]] = defaultdict(list)
        for task in self.tasks.values():
            if task.status in LIVE_TASK_STATES:
                by_agent[task.agent].append(task)
        for agent, tasks in sorted(by_agent.items()):
            oldest = min(tasks, key=lambda t: t.created_at)
            line = (f"{len(tasks)} task(s) on agent {agent!r}; oldest: {oldest.verb} "
                    f"{oldest.id} {oldest.status} for {now - oldest.created_at:.0f} s")
            if oldest.deadline:
                line += f", deadline in {max(0.0, oldest.deadline - now):.0f} s"
            if oldest.message:
                line += f" ({oldest.message})"
            parts.append(line)
        retrying = [t for t in self.tasks.values() if t.retry_at > now]
        if retrying:
            soonest = min(retrying, key=lambda t: t.retry_at)
            parts.append(f"{len(retrying)} agent call(s) backing off, the next in "
                         f"{soonest.retry_at - now:.1f} s ({soonest.message})")
        later = [c for c in self.not_started.values() if c.not_before > now]
        if later:
            soonest_command = min(later, key=lambda c: c.not_before)
            parts.append(f"{len(later)} command(s) due later, the next ({soonest_command.type}) "
                         f"in {soonest_command.not_before - now:.1f} s")
        return "waiting for " + "; ".join(parts) if parts else "nothing to wait for"
