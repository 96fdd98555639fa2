"""Hypothesis profiles: `ci`, the default, and `thorough`.

`ci` is bounded and derandomized, so CI is repeatable and takes minutes; `thorough` makes many more
and longer runs, random, and is chosen with ENDACTION_HYPOTHESIS_PROFILE=thorough. Failing examples
print as a replayable script, and `print_blob` adds the @reproduce_failure line that replays one
exactly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "ENDACTION_HYPOTHESIS_PROFILE"
_COMMON = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}

settings.register_profile("ci", max_examples=60, stateful_step_count=40, derandomize=True,
                          **_COMMON)
settings.register_profile("thorough", max_examples=2000, stateful_step_count=80, **_COMMON)


def load_profile() -> str:
    name = os.environ.get(PROFILE_ENV, "ci")
    settings.load_profile(name)
    return name
