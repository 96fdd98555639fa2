"""Bounds are validated where they are made: a NaN, an infinity or a zero is no bound."""

from __future__ import annotations

import math
from typing import Any

import pytest

from statemachines import Limits, RevertPolicy


@pytest.mark.parametrize(("field", "value"), [
    ("max_start_attempts", 0), ("max_poll_failures", 2.5), ("max_clear_attempts", True),
    ("agent_retry_seconds", math.nan), ("max_agent_retry_seconds", math.inf),
    ("task_timeout", 0), ("task_timeout", math.inf), ("abort_grace", -1),
    ("max_tree_depth", 0), ("max_rounds_per_tick", "100"),
])
def test_limits_refuse_what_is_no_bound(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"Limits.{field} must be"):
        Limits(**{field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("max_attempts", 0), ("max_attempts", -1), ("max_lost_attempts", 0),
    ("backoff_seconds", math.nan), ("backoff_seconds", -1), ("backoff_factor", math.inf),
    ("backoff_factor", 0.5),
])
def test_revert_policies_refuse_what_is_no_bound(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"RevertPolicy.{field} must be"):
        RevertPolicy(**{field: value})


def test_the_back_off_never_grows_past_an_hour() -> None:
    policy = RevertPolicy(backoff_seconds=1, backoff_factor=1e300)
    assert policy.delay_before(1) == 0
    assert policy.delay_before(50) == 3600


def test_a_deadlock_is_a_lost_race_to_retry_not_a_failure() -> None:
    from sqlalchemy.exc import OperationalError

    from persistence.db_errors import translate
    from statemachines import ConcurrentModification, StoreUnavailable

    class Deadlock(Exception):
        sqlstate = "40P01"

    class Refused(Exception):
        sqlstate = "08006"

    lost = translate(OperationalError("UPDATE", {}, Deadlock("deadlock detected")), "db", "x")
    assert isinstance(lost, ConcurrentModification)
    down = translate(OperationalError("UPDATE", {}, Refused("connection refused")), "db", "x")
    assert isinstance(down, StoreUnavailable)
