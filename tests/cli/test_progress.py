"""Live progress on a terminal, plain lines elsewhere, and the totals the live panel shows."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from persistence import SqlStore
from statemachines import CommandStatus, TickReport
from statemachines.toolkit.progress import LiveProgress, PlainProgress, Totals, make_progress
from tests.worlds import World


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = make_progress(stream)
    assert isinstance(progress, PlainProgress)
    with progress:
        progress(TickReport(number=3, tasks_started=2, tasks_running=2))
        progress.note("a note")
    assert stream.getvalue() == "step 3: started 2, polling 2\na note\n"


def test_live_display_on_a_terminal() -> None:
    assert isinstance(make_progress(Terminal()), LiveProgress)


def ticks() -> list[TickReport]:
    return [
        TickReport(number=1, tasks_started=3, tasks_polled=3, tasks_running=3),
        TickReport(number=2, tasks_polled=3, tasks_running=1, tasks_succeeded=1,
                   tasks_failed=1, commands_ended=2, compensations_started=2),
        TickReport(number=3, compensations_ended=1, errors=["agent 'storage' failed to poll"]),
    ]


def test_totals_count_polling_ended_and_running_compensations() -> None:
    totals = Totals()
    for report in ticks():
        totals.add(report)
    assert (totals.steps, totals.started, totals.succeeded, totals.failed) == (3, 3, 1, 1)
    assert totals.polling == 1  # a gauge: the last tick that polled, not a sum
    assert (totals.compensations_started, totals.compensations_running) == (2, 1)
    assert totals.last_error == "agent 'storage' failed to poll"


def test_live_panel_renders_the_totals() -> None:
    screen = io.StringIO()
    progress = LiveProgress(Console(file=screen, force_terminal=True, width=120))
    with progress:
        for report in ticks():
            progress(report)
        progress.note("step 4: submitted")
    out = screen.getvalue()
    assert "\x1b[" in out, "a terminal gets colours and cursor movement"
    plain = Console(file=io.StringIO(), width=120)
    with plain.capture() as captured:
        plain.print(progress.render())
    panel = captured.get()
    assert "polling 1" in panel and "ended ok 1" in panel and "ended failed 1" in panel
    assert "running 1" in panel and "started 2" in panel
    assert "failed to poll" in panel
    assert "step 4: submitted" in out


def test_the_engine_reports_compensations_ending(sqlite_store: SqlStore) -> None:
    world = World(sqlite_store)
    reports: list[TickReport] = []
    engine = world.engine(on_commit=reports.append)
    root = world.submit_vm(engine, disks=4, fail=(2,))
    engine.run_until_idle()
    commands, _ = sqlite_store.tree(root)
    removals = sum(1 for c in commands if c.type == "RemoveImage")
    assert removals >= 3
    assert sum(r.compensations_started for r in reports) == removals
    assert sum(r.compensations_ended for r in reports) == removals


def _demo(tmp_path: Path, stderr: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "statemachines.cli", "demo", "--images", "2", "--fail", "0",
         "--json", "--db", str(tmp_path / "d.db"), "--storage", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=stderr)


def test_demo_piped_prints_plain_step_lines(tmp_path: Path) -> None:
    process = _demo(tmp_path, subprocess.PIPE)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 5  # disk 0 failed: rolled back cleanly
    json.loads(out)
    lines = err.decode().splitlines()
    assert lines and all(line.startswith("step ") for line in lines)
    assert b"\x1b[" not in err


def test_demo_on_a_terminal_shows_the_live_panel(tmp_path: Path) -> None:
    """Stderr on a pseudo-terminal: the panel is drawn there, stdout stays one JSON document."""
    main, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = _demo(tmp_path, secondary)
    out, _ = process.communicate(timeout=120)
    os.close(secondary)
    reader.join(timeout=10)
    os.close(main)
    assert process.returncode == 5
    assert json.loads(out)["root"]["status"] == CommandStatus.ENDED_FAILURE
    screen = b"".join(chunks).decode(errors="replace")
    assert "opposite commands" in screen and "running" in screen and "\x1b[" in screen
    assert "work ended" in screen, "the bar is drawn with the panel"


class Clock:
    """A clock the test moves, so that the bar's rate (and its estimate) is known."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_totals_count_the_work_known_and_ended() -> None:
    totals = Totals()
    for report in ticks():
        totals.add(report)
    # 3 tasks started + 2 compensations started; 2 tasks and 2 commands ended + 1 compensation
    assert (totals.work_known, totals.work_ended) == (5, 5)
    totals.add(TickReport(commands_ended=4))  # ended here, executed before this run (resume)
    assert totals.work_known == totals.work_ended == 9


def test_live_bar_shows_counts_and_an_estimate_once_there_is_a_rate(
        capsys: pytest.CaptureFixture[str]) -> None:
    screen, clock = io.StringIO(), Clock()
    progress = LiveProgress(Console(file=screen, force_terminal=True, width=120), clock=clock)

    def bar() -> str:
        plain = Console(file=io.StringIO(), width=120)
        with plain.capture() as captured:
            plain.print(progress.render())
        return captured.get().splitlines()[0]

    with progress:
        assert "work ended" in bar() and "about" not in bar()  # nothing known yet
        progress(TickReport(number=1, commands_executed=1, tasks_started=4))
        assert "0/5" in bar() and "about" not in bar()  # no rate yet
        clock.now += 2
        progress(TickReport(number=2, tasks_succeeded=1))
        clock.now += 2
        progress(TickReport(number=3, tasks_succeeded=1))
        assert "2/5" in bar()
        assert "about 0:00:06 left" in bar()  # 1 unit per 2 s since the first, 3 units left
        clock.now += 2
        progress(TickReport(number=4, tasks_failed=2, compensations_started=2))
        assert "4/7" in bar(), "a rollback adds work: the bar steps back"
        progress(TickReport(number=5, commands_executed=2, commands_ended=3,
                            compensations_ended=2))
        assert "9/9" in bar() and "about" not in bar()  # all ended: no estimate
    out = screen.getvalue()
    assert "work ended" in out and "9/9" in out and "\x1b[" in out
    assert capsys.readouterr().out == "", "stdout is the JSON report's alone"
