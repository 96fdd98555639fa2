"""The engine's clock follows the database's time and this machine's monotonic clock.

It never follows the wall clock: a step of the wall clock moves no lease or deadline, a reading that
fails keeps the time going, and the time never runs backwards.
"""

from __future__ import annotations

import logging

import pytest

from statemachines.core.engine.steady_clock import SteadyClock


class Clocks:
    """A database clock, a monotonic clock and a wall clock, each set by the test."""

    def __init__(self) -> None:
        self.database, self.mono, self.wall = 1_000_000.0, 50.0, 1_000_000.0
        self.reads = 0
        self.fail: Exception | None = None

    def read_database(self) -> float:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return self.database

    def advance(self, seconds: float) -> None:
        self.database += seconds
        self.mono += seconds
        self.wall += seconds

    def clock(self, resync: float = 60.0) -> SteadyClock:
        return SteadyClock(self.read_database, resync=resync, monotonic=lambda: self.mono,
                           wall=lambda: self.wall)


def test_a_step_of_the_wall_clock_moves_nothing() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    assert clock() == 1_000_000.0
    clocks.advance(10)
    clocks.wall += 3600  # the machine's clock steps an hour forward
    assert clock() == 1_000_010.0
    clocks.wall -= 7200  # and an hour back
    clocks.advance(5)
    assert clock() == 1_000_015.0
    assert clocks.reads == 1  # between resyncs the monotonic clock carries it


def test_it_follows_the_database_not_this_machine(caplog: pytest.LogCaptureFixture) -> None:
    clocks = Clocks()
    clocks.wall += 600  # this machine is ten minutes ahead
    with caplog.at_level(logging.WARNING, "endaction.clock"):
        clock = clocks.clock()
        assert clock() == 1_000_000.0
    assert "this machine's clock is 600.0 s ahead of the database's" in caplog.text


def test_a_resync_never_moves_time_back() -> None:
    clocks = Clocks()
    clock = clocks.clock(resync=10)
    clock()
    clocks.advance(30)
    clocks.database -= 2  # the database's clock is found two seconds behind the carried one
    assert clock() == 1_000_030.0  # not 1_000_028: leases written must not move back
    clocks.advance(1)
    assert clock() == 1_000_030.0  # it stands still until the database catches up
    clocks.advance(2)
    assert clock() == 1_000_031.0


def test_a_failed_reading_keeps_the_time_going() -> None:
    clocks = Clocks()
    clock = clocks.clock(resync=10)
    clock()
    clocks.fail = ConnectionError("server closed the connection")
    clocks.advance(15)
    assert clock() == 1_000_015.0  # carried forward from the last reading
    clocks.fail = None
    clocks.advance(15)
    assert clock() == 1_000_030.0
    assert clocks.reads == 3


def test_without_any_reading_it_uses_this_machine_and_asks_again_soon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clocks = Clocks()
    clocks.fail = ConnectionError("connection refused")
    clock = clocks.clock()
    with caplog.at_level(logging.WARNING, "endaction.clock"):
        assert clock() == clocks.wall
    assert "cannot read the database's time (connection refused)" in caplog.text
    clocks.fail = None
    clocks.wall += 100  # this machine was wrong: the database says otherwise
    clocks.advance(6)
    clock()
    assert clocks.reads == 2  # asked again within seconds, not after a full resync
