"""`python -m benchmarks all`: every case of the performance targets in one run.

Each case runs in a process of its own; then come the table and the verdict on each target, as
Markdown.

The verdicts are computed from the figures of this run, never typed in: BENCHMARKS.md pastes
this output.
"""

from __future__ import annotations

import os
import platform
import sqlite3
from collections.abc import Callable
from typing import Any

X = "\N{MULTIPLICATION SIGN}"
Run = Callable[..., dict[str, Any]]
Compare = Callable[[int, bool], list[dict[str, Any]]]

# The targets of the performance issue: (what, how it is judged).
SQLITE_10K_SECONDS, SQLITE_10K_MB = 1.5, 100
SQLITE_100K_SECONDS, SQLITE_100K_MB, PER_CHILD_DRIFT = 20.0, 300, 1.3
PG_TO_SQLITE, TO_FLOOR, LOAD_SECONDS, AHEAD_OF_TASKFLOW = 1.5, 1.5, 0.5, 100
# Two runs of one case on this shared virtual machine differ by this much and more.
NOISE = 0.05


def collect(run: Run, compare: Compare, postgres_url: str | None,
            taskflow: bool) -> dict[str, dict[str, Any]]:
    """Every case, by name.

    `run(*args)` runs one in its own process, `compare(n, taskflow)` runs endaction beside its
    peers.
    """
    found = {f"sqlite {n}": run("rollback", "--count", str(n)) for n in (1000, 10000, 100000)}
    if postgres_url:
        found["postgresql 10000"] = run("rollback", "--count", "10000", "--db", postgres_url)
        # SQLite again, right after: the ratio compares neighbours in time on a shared machine.
        found["sqlite 10000 again"] = run("rollback", "--count", "10000")
    found["recover 10000"] = run("recover", "--count", "10000")
    for result in compare(1000, taskflow):
        found[f"compare {result['case']}"] = result
    for result in compare(10000, False):  # the floor where per-tick costs weigh less
        found[f"compare {result['case']} 10000"] = result
    return found


def markdown(found: dict[str, dict[str, Any]]) -> str:
    """The report BENCHMARKS.md pastes, as Markdown.

    It has the machine's line, a row per case, the recovery's rows, and each target's verdict.
    """
    lines = [f"Machine: {platform.machine()}, {_cpus()} cores, Python {platform.python_version()}, "
             f"SQLite {sqlite3.sqlite_version}.", "",
             "| case | run | peak RSS | statements | rows written | per child |",
             "|---|---|---|---|---|---|"]
    for name, r in found.items():
        if name.startswith("recover"):
            continue
        per_child = f"{r['seconds'] / r['count'] * 1e3:.2f} ms" if r.get("count") else ""
        lines.append(f"| {name} | {r['seconds']:.2f} s | {r['peak_rss_mb']:.0f} MB | "
                     f"{r.get('statements', '')} | {_n(r.get('rows_written'))} | {per_child} |")
    rec = found["recover 10000"]
    lines += [f"| recovery of {rec['in_flight_tasks']:,} in-flight tasks: load | "
              f"{rec['load_seconds']:.2f} s | {rec['peak_rss_mb']:.0f} MB | | | |",
              f"| the run after it against the same run uncrashed, side by side in each of "
              f"{len(rec['round_ratios'])} rounds (the crashed one first in the odd rounds) | "
              f"median {rec['ratio_to_uncrashed']:.2f}{X}; by round {_ratios(rec)} (medians "
              f"{rec['run_after_seconds']:.2f} s and {rec['uncrashed_run_seconds']:.2f} s) "
              "| | | | |",
              "", "| target | this run | met |", "|---|---|---|"]
    lines += [f"| {what} | {now} | {'yes' if met else 'no'} |"
              for what, now, met in verdicts(found)]
    return "\n".join(lines)


def verdicts(found: dict[str, dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """Each target against this run's figures: (target, figures, met).

    The PostgreSQL, raw-SQL floor and TaskFlow targets are judged only when their cases ran.
    """
    small, mid, big = (found[f"sqlite {n}"] for n in (1000, 10000, 100000))
    drift = (big["seconds"] / big["count"]) / (small["seconds"] / small["count"])
    rows = [
        (f"SQLite, N = 10,000: under {SQLITE_10K_SECONDS} s and {SQLITE_10K_MB} MB",
         f"{mid['seconds']:.2f} s, {mid['peak_rss_mb']:.0f} MB",
         mid["seconds"] < SQLITE_10K_SECONDS and mid["peak_rss_mb"] < SQLITE_10K_MB),
        (f"SQLite, N = 100,000: under {SQLITE_100K_SECONDS:.0f} s and {SQLITE_100K_MB} MB",
         f"{big['seconds']:.1f} s, {big['peak_rss_mb']:.0f} MB",
         big["seconds"] < SQLITE_100K_SECONDS and big["peak_rss_mb"] < SQLITE_100K_MB),
        (f"SQLite, N = 100,000: cost per child within {PER_CHILD_DRIFT}{X} of N = 1,000",
         f"{drift:.2f}{X}", drift <= PER_CHILD_DRIFT),
    ]
    if "postgresql 10000" in found:
        pg = found["postgresql 10000"]
        sqlite_seconds = min(mid["seconds"], found["sqlite 10000 again"]["seconds"])
        ratio = pg["seconds"] / sqlite_seconds
        rows.append((f"PostgreSQL, N = 10,000: within {PG_TO_SQLITE}{X} of SQLite",
                     f"{pg['seconds']:.2f} s against {sqlite_seconds:.2f} s: {ratio:.2f}{X}",
                     ratio <= PG_TO_SQLITE))
    for suffix, n in (("", "1,000"), (" 10000", "10,000")):
        if f"compare endaction{suffix}" not in found:
            continue
        ours, floor = found[f"compare endaction{suffix}"], found[f"compare raw sqlite3{suffix}"]
        to_floor = ours["seconds"] / floor["seconds"]
        rows.append((f"within {TO_FLOOR}{X} of the raw-SQL floor (the same rows, N = {n})",
                     f"{ours['seconds']:.3f} s against {floor['seconds']:.3f} s: "
                     f"{to_floor:.1f}{X}", to_floor <= TO_FLOOR))
    rec = found["recover 10000"]
    rows.append((f"recovery of 10,000 in-flight tasks: load under {LOAD_SECONDS} s, the run "
                 f"after no slower than uncrashed (within {NOISE:.0%}, the machine's noise)",
                 f"{rec['load_seconds']:.2f} s, {rec['ratio_to_uncrashed']:.2f}{X} (the median "
                 "of the rounds' ratios)",
                 rec["load_seconds"] < LOAD_SECONDS
                 and rec["ratio_to_uncrashed"] <= 1 + NOISE))
    if "compare TaskFlow" in found:
        ahead = found["compare TaskFlow"]["ratio_to_endaction"]
        rows.append((f"at least {AHEAD_OF_TASKFLOW}{X} ahead of TaskFlow at N = 1,000 (same "
                     "invocation)", f"{ahead:.0f}{X}", ahead >= AHEAD_OF_TASKFLOW))
    return rows


def _n(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else ""


def _cpus() -> int:
    return os.cpu_count() or 0


def _ratios(rec: dict[str, Any]) -> str:
    """The paired rounds' ratios in round order.

    The spread says how far one round can be trusted, the order whether going second costs.
    """
    return ", ".join(f"{r:.2f}{X}" for r in rec["round_ratios"])
