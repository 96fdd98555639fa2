"""The wake-up listener never spins.

A connection that fails after LISTEN (a driver that cannot deliver notifications, a server that
drops it at once) costs a doubling back-off and one log line per outage, not a reconnect loop; and a
worker on a store that cannot wake anyone polls instead of failing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from persistence.wakeups import Wakeups
from statemachines.core.engine.worker import _Polling, _wakeups_of


class _BrokenAfterListen:
    """Listens, then fails the first notifications call, as a driver without them would."""

    connects = 0

    def __init__(self) -> None:
        type(self).connects += 1

    def execute(self, statement: str) -> None:
        assert statement.startswith("LISTEN ")

    def notifies(self, timeout: float) -> Any:
        raise TypeError("notifies() got an unexpected keyword argument 'timeout'")

    def close(self) -> None:
        pass


def test_a_connection_that_fails_after_listen_backs_off_and_logs_once(
        caplog: pytest.LogCaptureFixture) -> None:
    _BrokenAfterListen.connects = 0
    with caplog.at_level(logging.WARNING, logger="endaction.wakeups"):
        wakeups = Wakeups(_BrokenAfterListen)
        time.sleep(2.0)
        wakeups.close()
    # Tries at 0, 0.5, 1.5 s (back-off 0.5, 1, 2...): a handful, never thousands.
    assert 1 <= _BrokenAfterListen.connects <= 4
    warnings = [r for r in caplog.records if r.name == "endaction.wakeups"]
    assert len(warnings) == 1 and "TypeError" in warnings[0].getMessage()


def test_a_store_without_wakeups_gives_a_worker_polling_alone() -> None:
    polling = _wakeups_of(object())
    assert isinstance(polling, _Polling)
    stop = threading.Event()
    started = time.monotonic()
    assert polling.wait(0.05, stop) is False
    assert time.monotonic() - started >= 0.04
    stop.set()
    assert polling.wait(10.0, stop) is False  # returns at once once stopped
