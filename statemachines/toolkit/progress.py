"""Progress of a run, on stderr so that stdout stays one JSON document with --json.

On a terminal a Rich live panel shows a progress bar (the work ended out of the work known so
far, with an estimate of the time left) above running totals (tasks polling and ended,
opposite commands running, the last agent error); anywhere else (a pipe, a log file, CI) each
persisted step is one plain line, which is what tests and log readers can rely on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from ..core.records.tick_report import TickReport


class Progress(Protocol):
    """What the CLI needs from a progress display; one is open for the length of a run."""

    def __enter__(self) -> Progress:
        """Open the display for the run; returns the display."""

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the display; an error raised in the run passes through."""

    def __call__(self, report: TickReport) -> None:
        """One committed tick, when the display itself numbers the steps."""

    def observe(self, report: TickReport) -> None:
        """One committed tick, when the caller writes the step line itself (see note)."""

    def note(self, text: str) -> None:
        """A line that is not a tick: what the run waits for, what it retries."""


def describe(report: TickReport) -> str:
    """One tick in a line, for a progress display or a log: its summary, then its errors."""
    line = report.summary()
    if report.errors:
        line += " | " + "; ".join(report.errors)
    return line


def make_progress(stream: TextIO | None = None) -> Progress:
    """A live display when `stream` (stderr by default) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        return LiveProgress(Console(file=stream))
    return PlainProgress(stream)


class PlainProgress:
    """Progress as plain lines, one per committed tick: what tests and log readers rely on."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __enter__(self) -> PlainProgress:
        """Nothing to open: plain lines need no screen."""
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Nothing to close; an error raised in the run passes through."""
        return None

    def __call__(self, report: TickReport) -> None:
        """Write the tick as one `step N: ...` line, flushed at once."""
        print(f"step {report.number}: {describe(report)}", file=self.stream, flush=True)

    def observe(self, report: TickReport) -> None:
        """Plain lines carry no totals: the step line the caller notes says it all."""

    def note(self, text: str) -> None:
        """Write the text as a line of its own, flushed at once."""
        print(text, file=self.stream, flush=True)


@dataclass
class Totals:
    """Running totals over the ticks of one run; `polling` is the latest tick's gauge."""

    steps: int = 0
    started: int = 0
    polling: int = 0
    succeeded: int = 0
    failed: int = 0
    cleared: int = 0
    executed: int = 0
    ended: int = 0
    compensations_started: int = 0
    compensations_ended: int = 0
    last_error: str = ""

    def add(self, report: TickReport) -> None:
        """Count one committed tick in; `polling` takes its gauge only from a tick that polled."""
        self.steps += 1
        self.started += report.tasks_started
        if report.tasks_polled:
            self.polling = report.tasks_running
        self.succeeded += report.tasks_succeeded
        self.failed += report.tasks_failed
        self.cleared += report.tasks_cleared
        self.executed += report.commands_executed
        self.ended += report.commands_ended
        self.compensations_started += report.compensations_started
        self.compensations_ended += report.compensations_ended
        if report.errors:
            self.last_error = report.errors[-1]

    @property
    def compensations_running(self) -> int:
        """The opposite commands started in this run whose end has not run yet."""
        return self.compensations_started - self.compensations_ended

    @property
    def work_known(self) -> int:
        """The bar's total: tasks started, commands executed and opposite commands started.

        Only the work seen so far is known, so the total grows as the run goes: when a
        rollback starts opposite commands it adds work, and the bar may step back. An
        opposite command counts once as it is started and once more as the command it is; it
        is done when it ends (`commands_ended` and `compensations_ended`). Never below
        `work_ended`, which may include work started before this run (`resume`, `cleanup`).
        """
        known = self.started + self.executed + self.compensations_started
        return max(known, self.work_ended)

    @property
    def work_ended(self) -> int:
        """The bar's completed part: tasks ended (ok or failed), commands ended.

        Opposite commands count once more as they end (`compensations_ended`).
        """
        return self.succeeded + self.failed + self.ended + self.compensations_ended


class _Estimate(TimeRemainingColumn):
    """Rich's time-remaining estimate, shown only once there is a rate and work is left."""

    def render(self, task: Task) -> Text:
        if task.total is None or task.finished or task.time_remaining is None:
            return Text("")
        return Text("about ", style="progress.remaining") + super().render(task) + Text(
            " left", style="progress.remaining")


class LiveProgress:
    """A Rich live panel: a bar of the work ended so far, the run's totals below.

    Notes scroll above it.
    """

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self.totals = Totals()
        self.began = clock()
        self.bar = RichProgress(TextColumn("work ended"), BarColumn(), MofNCompleteColumn(),
                                _Estimate(), console=console, auto_refresh=False,
                                get_time=clock)
        self.work = self.bar.add_task("work ended", total=None)
        self.live = Live(self.render(), console=console, refresh_per_second=8,
                         redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> LiveProgress:
        """Start the live panel on the console; returns the display."""
        self.live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Draw the panel one last time, with the final totals, and stop it."""
        self.live.update(self.render(), refresh=True)
        self.live.stop()

    def __call__(self, report: TickReport) -> None:
        """The same as `observe`: the panel counts the ticks in its totals."""
        self.observe(report)

    def observe(self, report: TickReport) -> None:
        """Take the tick into the totals and the bar, and redraw the panel at once."""
        self.totals.add(report)
        self._advance_bar()
        self.live.update(self.render(), refresh=True)

    def _advance_bar(self) -> None:
        total, ended = self.totals.work_known, self.totals.work_ended
        if not total:
            return
        # The total is set on the task itself: `Progress.update(total=...)` would throw away
        # the samples the rate is estimated from, and the total grows on most ticks. A task
        # that had finished is open again when more work becomes known.
        task = self.bar.tasks[0]
        task.total = total
        if ended < total:
            task.finished_time = None
        self.bar.update(self.work, completed=ended)

    def note(self, text: str) -> None:
        """Print the text dimmed above the panel, where it scrolls with the run."""
        self.console.print(Text(text, style="dim"))

    def render(self) -> RenderableType:
        """The panel as it stands: the bar above a grid of the totals and the time so far."""
        t = self.totals
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("ticks", f"{t.steps}   [dim]{self.clock() - self.began:.1f} s[/dim]")
        grid.add_row("tasks", f"[cyan]polling {t.polling}[/cyan] · started {t.started} · "
                              f"[green]ended ok {t.succeeded}[/green] · "
                              f"[red]ended failed {t.failed}[/red] · cleared {t.cleared}")
        grid.add_row("commands", f"executed {t.executed} · ended {t.ended}")
        grid.add_row("opposite commands",
                      f"[yellow]running {t.compensations_running}[/yellow] · "
                      f"started {t.compensations_started} · ended {t.compensations_ended}")
        if t.last_error:
            grid.add_row("last error", Text(t.last_error, style="red"))
        return Group(self.bar, grid)
