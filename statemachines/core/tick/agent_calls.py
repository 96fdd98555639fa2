"""The agent phase of a tick: every call to an agent, made outside any transaction.

An agent call can take as long as the network lets it; holding the database's write lock
meanwhile would stall every other writer. So a tick first asks the agents (start the pending
tasks, one batched poll per agent, clear the ended tasks) and only collects their answers here;
the transactional phase applies them. Nothing an agent raises or answers escapes as an
exception: it becomes an answer (a retry, a rejection, an unknown end) that the tick records.

An agent that did not answer a call at all (`AgentUnreachable`: its host is down or frozen)
is asked nothing more in the same tick. Each further call would wait out the same timeout, so
a tick would cost one timeout per task (minutes for a few dozen tasks, with no lease renewed
and no stop request heard meanwhile) and log a line per task. The calls not made count as
failed tries, with the reason recorded on each task, so every task's retry budget runs down
as fast as if it had been asked; the log gets one line for them per tick.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownAgent
from ..machines.host_status import HostResult, HostStatus, TaskReport
from ..machines.task_machine import POLLED_TASK_STATES, TaskStatus
from ..ports.agent_protocol import Abortable, Agent, AgentUnreachable, TaskRejected
from ..records.frozen_json import freeze_output
from ..records.limits import Limits
from ..records.records import TaskRecord
from ..records.tick_report import TickReport
from .containment import describe
from .engine_view import EngineView


@dataclass
class AgentAnswers:
    """What the agents said during the agent phase of a tick, applied inside its transaction."""

    accepted: list[TaskRecord] = field(default_factory=list)
    rejected: list[tuple[TaskRecord, str]] = field(default_factory=list)
    start_retry: list[tuple[TaskRecord, str]] = field(default_factory=list)
    reports: list[tuple[TaskRecord, TaskReport]] = field(default_factory=list)
    poll_failed: list[tuple[TaskRecord, str]] = field(default_factory=list)
    cleared: list[TaskRecord] = field(default_factory=list)
    clear_failed: list[tuple[TaskRecord, str]] = field(default_factory=list)

    def any(self) -> bool:
        """Whether the agents said anything.

        If not, and nothing else is due, the tick opens no transaction.
        """
        return any((self.accepted, self.rejected, self.start_retry, self.reports,
                    self.poll_failed, self.cleared, self.clear_failed))


class AgentCalls:
    """Talks to the configured agents on behalf of one engine."""

    def __init__(self, agents: Mapping[str, Agent], limits: Limits) -> None:
        self.agents = dict(agents)
        self.limits = limits
        # For the exchange under way: the agents that did not answer (what they raised), and
        # how many calls to each were not made since.
        self._silent: dict[str, str] = {}
        self._skipped: Counter[str] = Counter()

    def exchange(self, view: EngineView, now: float, report: TickReport) -> AgentAnswers:
        """Start what is pending, poll what is running, clear what has ended."""
        answers = AgentAnswers()
        self._silent, self._skipped = {}, Counter()
        polling: dict[str, list[TaskRecord]] = defaultdict(list)
        fresh: set[str] = set()
        for task in list(view.tasks.values()):
            if task.status in POLLED_TASK_STATES:
                if task.retry_at > now:
                    continue  # after a failed poll, polls back off too
                if task.status == TaskStatus.ABORTING:
                    self._abort(task, report)
                polling[task.agent].append(task)
            elif not view.agent_work_due(task, now, self.limits):
                continue
            elif task.status == TaskStatus.PENDING:
                # A task the agent accepts is polled in the same batch: an opposite command's
                # tasks (and every other task) are watched from the tick that starts them.
                if self._start(task, answers, report):
                    polling[task.agent].append(task)
                    fresh.add(task.id)
            else:
                self._clear(task, answers, report)
        for agent_name, tasks in polling.items():
            self._poll(agent_name, tasks, answers, fresh, report)
        for agent_name, count in sorted(self._skipped.items()):
            report.errors.append(
                f"agent {agent_name!r} was not asked {count} more time(s) in this tick: it did "
                "not answer before (each counts as a failed try)")
        return answers

    def _not_asked(self, name: str, doing: str) -> str | None:
        """Why `name` is not asked to do `doing` in this exchange, or None if it may be."""
        why = self._silent.get(name)
        if why is None:
            return None
        self._skipped[name] += 1
        return f"agent {name!r} was not asked to {doing}: it did not answer before ({why})"

    def _fell_silent(self, name: str, err: Exception) -> None:
        if isinstance(err, AgentUnreachable):
            self._silent.setdefault(name, str(err))

    def _start(self, task: TaskRecord, answers: AgentAnswers, report: TickReport) -> bool:
        agent = self.agents.get(task.agent)
        if agent is None:
            answers.rejected.append((task, str(UnknownAgent(task.agent, list(self.agents)))))
            return False
        message = self._not_asked(task.agent, f"start task {task.id}")
        if message is None:
            try:
                agent.start(task.id, task.verb, task.parameters)
            except TaskRejected as err:
                answers.rejected.append((task, f"agent {task.agent!r} rejected the task: {err}"))
                return False
            except Exception as err:
                self._fell_silent(task.agent, err)
                message = f"agent {task.agent!r} failed to start task {task.id}: {describe(err)}"
                report.errors.append(message)
            else:
                answers.accepted.append(task)
                return True
        if task.attempts + 1 < self.limits.max_start_attempts:
            answers.start_retry.append((task, message))
        elif self._agent_knows(agent, task):
            answers.accepted.append(task)  # a start that errored went through after all
            return True
        else:
            answers.rejected.append((task, f"{message} (gave up after {task.attempts + 1})"))
        return False

    def _poll(self, name: str, tasks: list[TaskRecord], answers: AgentAnswers,
              fresh: set[str], report: TickReport) -> None:
        agent = self.agents.get(name)
        if agent is None:
            for task in tasks:
                answers.reports.append((task, TaskReport.unknown(f"no agent named {name!r}")))
            return
        skipped = self._not_asked(name, f"poll {len(tasks)} task(s)")
        if skipped is not None:
            answers.poll_failed.extend((task, skipped) for task in tasks)
            return
        answered = self._ask_poll(name, agent, tasks)
        if isinstance(answered, str):
            report.errors.append(answered)
            answers.poll_failed.extend((task, answered) for task in tasks)
            return
        report.tasks_polled += len(tasks)
        for task in tasks:
            answer = answered[task.id]
            if answer is None and task.id in fresh:
                continue  # just started: the agent may not list it yet; poll it next tick
            if answer is None:
                answer = TaskReport.unknown(f"agent {name!r} no longer knows task {task.id}")
            else:
                answer = _checked(name, task.id, answer, report, self.limits.max_output_bytes)
            answers.reports.append((task, answer))

    def _ask_poll(self, name: str, agent: Agent, tasks: list[TaskRecord]
                  ) -> dict[str, Any] | str:
        """What the agent answered for each task, or why its answer cannot be used."""
        try:
            reply = agent.poll([t.id for t in tasks])
        except Exception as err:
            self._fell_silent(name, err)
            return f"agent {name!r} failed to poll: {describe(err)}"
        if not isinstance(reply, Mapping):
            return f"agent {name!r} answered a poll with {type(reply).__name__}, not a mapping"
        try:
            return {task.id: reply.get(task.id) for task in tasks}
        except Exception as err:
            return f"agent {name!r} answered a poll it could not be read from: {describe(err)}"

    def _abort(self, task: TaskRecord, report: TickReport) -> None:
        """Ask the agent to abort the task, again at every poll until it reports the end.

        Abort is idempotent, and one lost request must not leave the task running.
        """
        agent = self.agents.get(task.agent)
        if not isinstance(agent, Abortable) or self._not_asked(task.agent,
                                                               f"abort task {task.id}"):
            return
        try:
            agent.abort(task.id)
        except Exception as err:
            self._fell_silent(task.agent, err)
            report.errors.append(
                f"agent {task.agent!r} failed to abort task {task.id}: {describe(err)}")

    def _clear(self, task: TaskRecord, answers: AgentAnswers, report: TickReport) -> None:
        """Ask the agent to clear an ended task, and collect its answer.

        A failed clear is said in the report here; one not asked, in the exchange's one line
        for its agent.
        """
        agent = self.agents.get(task.agent)
        if agent is None:
            message = f"no agent named {task.agent!r}"
            report.errors.append(message)
            answers.clear_failed.append((task, message))
            return
        skipped = self._not_asked(task.agent, f"clear task {task.id}")
        if skipped is not None:
            answers.clear_failed.append((task, skipped))
            return
        try:
            agent.clear(task.id)
        except Exception as err:
            self._fell_silent(task.agent, err)
            message = f"agent {task.agent!r} failed to clear task {task.id}: {describe(err)}"
            report.errors.append(message)
            answers.clear_failed.append((task, message))
        else:
            answers.cleared.append(task)

    def _agent_knows(self, agent: Agent, task: TaskRecord) -> bool:
        """Before giving up on a start, ask whether it happened anyway.

        Declaring it failed while the work runs would let the work land after its revert had
        run. An agent that did not answer in this exchange is not asked: it cannot say, as when
        its poll fails (the task is then cleared, and a cleared id never starts).
        """
        if task.agent in self._silent:
            return False
        try:
            reply = agent.poll([task.id])
        except Exception as err:
            self._fell_silent(task.agent, err)
            return False
        return isinstance(reply, Mapping) and isinstance(reply.get(task.id), TaskReport)


def _checked(agent: str, task_id: str, answer: object, report: TickReport,
             max_output_bytes: int) -> TaskReport:
    """The answer as a TaskReport of known statuses, or one that ends the task `unknown`.

    Anything else is garbage, which ends the task `unknown` (a status the engine does not know
    could not even be stored). So does an output that cannot be kept: the next step would read
    it.
    """
    try:
        if not isinstance(answer, TaskReport):
            raise TypeError(type(answer).__name__)
        checked = TaskReport(HostStatus(answer.status), HostResult(answer.result),
                             str(answer.message or ""))
    except (TypeError, ValueError):
        garbage = TaskReport.unknown(
            f"agent {agent!r} answered garbage for task {task_id}: {answer!r:.200}")
        report.errors.append(garbage.message)
        return garbage
    if answer.output is None:
        return checked
    try:
        output = freeze_output(answer.output, max_output_bytes)
    except ValueError as err:
        refused = TaskReport.unknown(
            f"agent {agent!r} answered an output for task {task_id} that cannot be kept: {err}")
        report.errors.append(refused.message)
        return refused
    return TaskReport(checked.status, checked.result, checked.message, output)
