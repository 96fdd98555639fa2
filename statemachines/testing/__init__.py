"""The property suite, reusable: point it at your own commands and agents.

    from statemachines.testing import Scenario, engine_machine
    TestMyCommands = engine_machine(Scenario(...)).TestCase

`statemachines/example/vm/scenario.py` and `statemachines/example/network/scenario.py` are
complete scenarios to copy from.

It needs Hypothesis, the `testing` extra (`pip install 'endaction[testing]'`); without it,
importing this package raises `MissingExtra`, naming the extra.
"""

from ..core.errors import extra_missing

try:
    from .controlled_agent import AgentCrash, ControlledAgent, Effect, Output, no_effect, no_output
    from .engine_machine import ManualClock, engine_machine, kit_settings
    from .invariants import (
        check_outputs,
        check_quiescent,
        check_revert_progress,
        check_safety,
        fail_on,
        revert_failed_resources,
    )
    from .scenario import Scenario, Submission
    from .snapshot import Snapshot, take_snapshot
    from .step_checker import StepChecker
    from .termination import Bounds, TreeSize, measure, multiset_less, tick_bound
except ModuleNotFoundError as err:
    raise extra_missing(err, "testing", "the property kit (statemachines.testing)") from err

__all__ = [
    "AgentCrash",
    "Bounds",
    "ControlledAgent",
    "Effect",
    "ManualClock",
    "Output",
    "Scenario",
    "Snapshot",
    "StepChecker",
    "Submission",
    "TreeSize",
    "check_outputs",
    "check_quiescent",
    "check_revert_progress",
    "check_safety",
    "engine_machine",
    "fail_on",
    "kit_settings",
    "measure",
    "multiset_less",
    "no_effect",
    "no_output",
    "revert_failed_resources",
    "take_snapshot",
    "tick_bound",
]
