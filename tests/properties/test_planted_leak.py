"""The property kit on a domain it was not written for finds a leak planted in it.

A leak planted in an opposite command is found and shrunk to a few readable steps, with no
Hypothesis warning; the same domain without the leak passes. (How long it takes is a benchmark's
figure: `python -m benchmarks property-kit`.)
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from benchmarks.leaky_buckets import scenario
from benchmarks.property_kit import one_run
from statemachines.testing import engine_machine, kit_settings

pytestmark = pytest.mark.slow


def test_a_planted_leak_is_found_and_shrunk() -> None:
    result = one_run(leak=True)
    assert result["found"] == "leftovers: r0-b0 was left behind and not marked revert_failed"
    assert result["steps"] <= 4, result["counterexample"]
    assert result["counterexample"][0].startswith("state.first_submit(")
    assert result["warnings"] == []


def test_without_the_leak_the_domain_passes() -> None:
    result = one_run(leak=False, seed_settings=settings(kit_settings(), max_examples=25))
    assert result["found"] == "" and result["warnings"] == []


def test_the_kit_runs_without_the_explain_phase_and_keeps_the_profile() -> None:
    from hypothesis import Phase
    machine = engine_machine(scenario(leak=True))
    chosen = machine.TestCase.settings
    assert Phase.explain not in chosen.phases and Phase.shrink in chosen.phases
    assert chosen.deadline is None
    assert chosen.max_examples == settings.default.max_examples  # the loaded profile's
