"""The fast fire() agrees with transitions' own Event.trigger everywhere."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from statemachines import ExecutionReason
from statemachines.core.machines.command_machine import COMMAND_MACHINE
from statemachines.core.machines.host_status import HOST_MACHINE
from statemachines.core.machines.shared_machine import IllegalTransition, SharedMachine
from statemachines.core.machines.task_machine import TASK_MACHINE


@dataclass
class Model:
    status: str
    execution_reason: ExecutionReason
    work_succeeded: bool | None
    id: str = "m"


def _outcome(machine: SharedMachine, fire_name: str, model: Model, trigger: str) -> str:
    try:
        getattr(machine, fire_name)(model, trigger)
    except IllegalTransition:
        return "illegal"
    return model.status


@pytest.mark.parametrize("machine", [COMMAND_MACHINE, TASK_MACHINE, HOST_MACHINE],
                         ids=lambda m: m.kind)
def test_fast_and_strict_fire_agree(machine: SharedMachine) -> None:
    triggers = sorted(machine.machine.events)
    checked = 0
    for state, trigger, reason, work in itertools.product(
        machine.states, triggers, list(ExecutionReason), [True, False, None]
    ):
        fast = _outcome(machine, "fire", Model(state, reason, work), trigger)
        strict = _outcome(machine, "fire_strict", Model(state, reason, work), trigger)
        assert fast == strict, (state, trigger, reason, work)
        checked += fast != "illegal"
    assert checked > 0
