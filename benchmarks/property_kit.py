"""How long the property kit takes to find a planted leak and shrink it, as a user runs it.

`python -m benchmarks property-kit [--runs N]` runs `engine_machine(scenario)` over the leaky
buckets domain (benchmarks/leaky_buckets.py) with the settings a user's run gets: Hypothesis's
defaults (no profile of ours), random seeds, through the kit's own `TestCase.settings`. Each
run reports the seconds from start to the shrunk counterexample, its steps, and any warning
Hypothesis raised or printed; each run must find the leak.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import time
import warnings
from typing import Any

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from statemachines.testing import engine_machine

from .leaky_buckets import scenario


def one_run(leak: bool = True, seed_settings: settings | None = None) -> dict[str, Any]:
    """One run of the kit from scratch (no example database): what it found, how fast."""
    machine = engine_machine(scenario(leak))
    chosen = settings(seed_settings or machine.TestCase.settings, database=None)
    printed = io.StringIO()
    found = ""
    started = time.monotonic()
    logging.disable(logging.CRITICAL)  # the engine logs every revert it gives up on
    try:
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            warnings.simplefilter("always")
            try:
                run_state_machine_as_test(machine, settings=chosen)
            except AssertionError as err:
                found = "\n".join([str(err), *getattr(err, "__notes__", [])])
    finally:
        logging.disable(logging.NOTSET)
    seconds = time.monotonic() - started
    steps = [line for line in found.splitlines() if line.startswith("state.")
             and not line.startswith(("state.safety()", "state.teardown()"))]
    output = printed.getvalue()
    complaints = [str(w.message) for w in caught]
    complaints += [line for line in output.splitlines()
                   if "PLEASE REPORT" in line or "HealthCheck" in line or "WARNING" in line]
    return {"seconds": seconds, "found": found.splitlines()[0] if found else "",
            "steps": len(steps), "counterexample": steps, "warnings": complaints}


def main(runs: int, as_json: bool) -> dict[str, Any]:
    """Run the kit `runs` times and sum up: times, whether each found the leak, steps, warnings.

    Without `as_json` it also prints each run's counterexample and whether the target (every
    run under 60 s, each finding the leak, no warning) was met.
    """
    results = []
    for index in range(runs):
        result = one_run()
        results.append(result)
        if not as_json:
            print(f"run {index + 1}: {result['seconds']:.1f} s, {result['steps']} step(s): "
                  f"{result['found'] or 'NOT FOUND'}; warnings: {result['warnings'] or 'none'}")
            for line in result["counterexample"]:
                print(f"    {line}")
    times = [r["seconds"] for r in results]
    summary = {"runs": runs, "median_seconds": statistics.median(times),
               "max_seconds": max(times), "all_found": all(r["found"] for r in results),
               "max_steps": max(r["steps"] for r in results),
               "warnings": sorted({w for r in results for w in r["warnings"]})}
    met = summary["max_seconds"] < 60 and summary["all_found"] and not summary["warnings"]
    if not as_json:
        print(f"found and shrunk in {summary['median_seconds']:.1f} s (median of {runs}), "
              f"{summary['max_seconds']:.1f} s at most; target: under 60 s, no warning: "
              f"{'met' if met else 'NOT met'}")
    return summary
