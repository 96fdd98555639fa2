"""The harness judges the targets from its own figures: a miss reads `no`, a hit `yes`."""

from __future__ import annotations

from typing import Any

from benchmarks.summary import X, markdown, verdicts


def _rollback(count: int, seconds: float, mb: float) -> dict[str, Any]:
    return {"case": "endaction", "count": count, "seconds": seconds, "peak_rss_mb": mb,
            "statements": 10, "rows_written": 33 * count}


def _found(sqlite_10k: float, postgres_10k: float) -> dict[str, dict[str, Any]]:
    return {
        "sqlite 1000": _rollback(1000, 0.12, 60),
        "sqlite 10000": _rollback(10000, sqlite_10k, 90),
        "sqlite 100000": _rollback(100000, 14.0, 250),
        "postgresql 10000": _rollback(10000, postgres_10k, 95),
        "sqlite 10000 again": _rollback(10000, sqlite_10k * 1.1, 90),
        "recover 10000": {"in_flight_tasks": 10000, "load_seconds": 0.3, "peak_rss_mb": 80,
                          "run_after_seconds": 1.0, "uncrashed_run_seconds": 1.02,
                          "ratio_to_uncrashed": 0.98, "round_ratios": [0.97, 0.98, 0.99]},
        "compare endaction": {**_rollback(1000, 0.2, 60), "ratio_to_endaction": 1.0},
        "compare raw sqlite3": {**_rollback(1000, 0.15, 60), "case": "raw sqlite3"},
        "compare TaskFlow": {"case": "TaskFlow", "count": 1000, "seconds": 90.0,
                             "peak_rss_mb": 1400, "ratio_to_endaction": 450.0},
    }


def test_every_target_met_reads_yes() -> None:
    judged = verdicts(_found(sqlite_10k=1.2, postgres_10k=1.5))
    assert len(judged) == 7 and all(met for _, _, met in judged), judged


def test_a_missed_target_reads_no_with_its_figure() -> None:
    judged = {what: (now, met) for what, now, met in verdicts(_found(1.2, postgres_10k=2.0))}
    now, met = next(v for k, v in judged.items() if k.startswith("PostgreSQL"))
    assert not met and "1.67" in now  # against the faster of the two SQLite runs
    table = markdown(_found(1.2, 2.0))
    assert "| no |" in table and "recovery of 10,000 in-flight tasks: load" in table


def test_recovery_is_judged_by_the_median_of_its_paired_rounds() -> None:
    found = _found(1.2, 1.5)
    found["recover 10000"].update(ratio_to_uncrashed=1.02,
                                  round_ratios=[1.12, 0.97, 1.04, 1.0, 1.02, 1.03])
    judged = {what: (now, met) for what, now, met in verdicts(found)}
    now, met = next(v for k, v in judged.items() if k.startswith("recovery"))
    assert met and "1.02" in now
    assert ", ".join(f"{r:.2f}{X}" for r in (1.12, 0.97, 1.04, 1.0, 1.02, 1.03)) in markdown(found)
    found["recover 10000"]["ratio_to_uncrashed"] = 1.06
    assert not next(met for what, _, met in verdicts(found) if what.startswith("recovery"))
