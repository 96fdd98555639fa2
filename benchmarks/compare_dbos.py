"""`python -m benchmarks compare-dbos`: endaction and DBOS Transact on the same saga, in one run.

Each case runs on both sides one after the other (so that a slow minute of the machine hits
both), each side of each case in processes of its own with its database emptied first.

The cases: throughput on PostgreSQL (K = 2 and 10 children, 1 and 2 worker processes), one
process on SQLite (K = 2 and 10), the latency of one K = 2 root on an idle worker
(defaults, and tuned intervals), and a fan-out of 10,000 children with a rollback (SQLite
and PostgreSQL: seconds and peak memory). The sides are benchmarks/saga_cases.py and
benchmarks/dbos_peer.py; what each does is said there.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from .saga_cases import database_version, machine

#: `_in_own_process` of benchmarks/__main__.py: runs `python -m benchmarks ARGS --json`.
Runner = Callable[..., dict[str, Any]]

NOT_INSTALLED = "DBOS is not installed (pip install -e '.[bench]'): left out"
DBOS_DATABASE = "bench_dbos"


def available() -> bool:
    """Whether DBOS can be imported: without it, the DBOS side is left out, not failed."""
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Row:
    """One line of the table: both figures, and how endaction compares."""

    case: str
    unit: str
    endaction: float
    dbos: float | None
    better: str  # "higher" (a rate) or "lower" (a time, a size)
    ratio: str = ""

    def __post_init__(self) -> None:
        """Fill in `ratio` with the words that fit the unit: sizes, CPU time, or speed."""
        words = (("smaller", "larger") if self.unit == "MiB" else ("less", "more")
                 if self.case.startswith("CPU") else ("faster", "slower"))
        self.ratio = ratio_text(self.endaction, self.dbos, self.better, words)


def ratio_text(ours: float, theirs: float | None, better: str,
               words: tuple[str, str] = ("faster", "slower")) -> str:
    """Endaction against DBOS as "3.1x faster" / "2.0x slower", 1.0 being alike.

    The `words` given replace "faster" and "slower": for memory, "smaller"/"larger". Without a
    DBOS figure, or when either figure is not above zero, the text is "—".
    """
    if theirs is None or ours <= 0 or theirs <= 0:
        return "—"
    factor = ours / theirs if better == "higher" else theirs / ours
    good, bad = words
    shown = factor if factor >= 1 else 1 / factor
    digits = 0 if shown >= 10 else 1 if shown >= 1.95 else 2
    return f"{shown:.{digits}f}x {good if factor >= 1 else bad}"


def dbos_url(url: str, given: str | None) -> str:
    """DBOS's own database: `given`, or the same server's `bench_dbos`."""
    chosen = given or sa.make_url(url).set(database=DBOS_DATABASE).render_as_string(
        hide_password=False)
    if sa.make_url(chosen).database == sa.make_url(url).database:
        raise SystemExit("DBOS needs a database of its own: give --dbos-db another one")
    return chosen


Both = Callable[..., tuple[dict[str, Any], dict[str, Any] | None]]


def _value(result: dict[str, Any] | None, key: str) -> float | None:
    return None if result is None else float(result[key])


def _throughput_rows(both: Both, sizes: dict[int, int]) -> list[Row]:
    rows = []
    for k, roots in sizes.items():
        for workers in (1, 2):
            ours, theirs = both("throughput", "--k", str(k), "--roots", str(roots),
                                "--workers", str(workers))
            named = f"K={k}, {roots} roots, {workers} worker{'s' if workers > 1 else ''}"
            rows.append(Row(f"throughput, PostgreSQL, {named}", "roots/s",
                            ours["roots_per_s"], _value(theirs, "roots_per_s"), "higher"))
            if k == 2:
                rows += _cpu_rows(named, ours, theirs)
    return rows


def _cpu_rows(named: str, ours: dict[str, Any], theirs: dict[str, Any] | None) -> list[Row]:
    """What a root costs the machine: on 2 cores, what bounds the rate."""
    rows = []
    for key, whose in (("worker_cpu_ms_per_root", "the workers"),
                       ("postgres_cpu_ms_per_root", "PostgreSQL")):
        if ours.get(key) is not None:
            peer = _value(theirs, key) if theirs and theirs.get(key) is not None else None
            rows.append(Row(f"CPU per root, {named}: {whose}", "ms", ours[key], peer, "lower"))
    return rows


def _sqlite_rows(both: Both, sizes: dict[int, int]) -> list[Row]:
    rows = []
    for k, roots in sizes.items():
        ours, theirs = both("sqlite", "--k", str(k), "--roots", str(roots), pg=False)
        rows.append(Row(f"one process, SQLite, K={k}, {roots} roots", "roots/s",
                        ours["roots_per_s"], _value(theirs, "roots_per_s"), "higher"))
    return rows


def _latency_rows(both: Both) -> list[Row]:
    rows = []
    for variant in ("defaults", "tuned"):
        ours, theirs = both("latency", "--variant", variant)
        for key, label in (("median_ms", "median"), ("p90_ms", "p90")):
            rows.append(Row(f"latency of one K=2 root, PostgreSQL, {variant}, {label}",
                            "ms", ours[key], _value(theirs, key), "lower"))
    return rows


def _fanout_rows(both: Both, databases: tuple[str, ...], fanout: int,
                 dbos_fanout: str) -> list[Row]:
    rows = []
    for database in databases:
        ours, theirs = both("fanout", "--count", str(fanout), pg=database == "PostgreSQL",
                            extra=("--how", dbos_fanout))
        label = f"fan-out of {fanout:,} with rollback, {database}"
        rows.append(Row(f"{label}: time", "s", ours["seconds"], _value(theirs, "seconds"),
                        "lower"))
        rows.append(Row(f"{label}: peak RSS", "MiB", ours["peak_rss_mb"],
                        _value(theirs, "peak_rss_mb"), "lower"))
    return rows


def collect(runner: Runner, url: str | None, dbos_db: str | None, quick: bool,
            fanout: int, dbos_fanout: str) -> dict[str, Any]:
    """Every case, endaction then DBOS; the figures, the rows and the machine."""
    with_dbos = available()
    if not with_dbos:
        print(NOT_INSTALLED, file=sys.stderr)
    if url is None:
        print("no --db: the PostgreSQL cases are left out", file=sys.stderr)
    theirs_url = dbos_url(url, dbos_db) if url is not None and with_dbos else None
    raw: list[dict[str, Any]] = []

    def both(case: str, *args: str, pg: bool = True,
             extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any] | None]:
        ours = runner("saga-case", "endaction", case, *args,
                      *(("--db", url) if pg and url else ()))
        raw.append(ours)
        if not with_dbos:
            return ours, None
        theirs = runner("saga-case", "dbos", case, *args, *extra,
                        *(("--db", theirs_url) if pg and theirs_url else ()))
        raw.append(theirs)
        return ours, theirs

    sizes = {2: 200 if quick else 1000, 10: 100 if quick else 400}
    rows = _throughput_rows(both, sizes) if url is not None else []
    rows += _sqlite_rows(both, sizes)
    if url is not None:
        rows += _latency_rows(both)
    rows += _fanout_rows(both, ("SQLite", "PostgreSQL") if url is not None else ("SQLite",),
                         fanout, dbos_fanout)
    found = machine()
    found["sqlite"] = sqlite3.sqlite_version
    if url is not None:
        found["postgresql"] = database_version(url)
    if with_dbos:
        from .dbos_peer import version
        found["dbos"] = version()
    return {"machine": found, "dbos_fanout": dbos_fanout, "quick": quick,
            "fanout_count": fanout,
            "rows": [asdict(row) for row in rows], "results": raw}


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:,.{digits}f} {unit}"


def _find(rows: list[dict[str, Any]], *words: str) -> dict[str, Any] | None:
    """The row whose case names every one of `words`."""
    return next((row for row in rows if all(word in row["case"] for word in words)), None)


def targets(found: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue 25's targets against this run's own figures: (target, figures, met).

    Only the targets this run has figures for are listed.
    """
    rows = found["rows"]
    verdicts: list[tuple[str, str, bool]] = []
    latency = _find(rows, "latency", "defaults", "median")
    if latency is not None:
        verdicts.append(("latency of one K=2 root, PostgreSQL, idle worker, defaults: median "
                         "under 25 ms", f"{latency['endaction']:.1f} ms",
                         latency["endaction"] < 25.0))
    one, two = _find(rows, "K=2", "1 worker"), _find(rows, "K=2", "2 workers")
    if one is not None and two is not None:
        verdicts.append(("throughput, PostgreSQL, K=2, 2 workers: at least 1,000 roots/s",
                         f"{two['endaction']:,.0f} roots/s", two["endaction"] >= 1000))
        scale = two["endaction"] / one["endaction"]
        verdicts.append(("2 workers at least 1.7x one", f"{two['endaction']:,.0f} against "
                         f"{one['endaction']:,.0f} roots/s: {scale:.2f}x", scale >= 1.7))
        if two["dbos"]:
            ahead = two["endaction"] / two["dbos"]
            verdicts.append(("at least 5x DBOS in the same run (2 workers each)",
                             f"{two['endaction']:,.0f} against {two['dbos']:,.0f} roots/s: "
                             f"{ahead:.1f}x", ahead >= 5))
    count = found.get("fanout_count", 10_000)
    seconds = _find(rows, "fan-out", "SQLite: time")
    memory = _find(rows, "fan-out", "SQLite: peak")
    postgres = _find(rows, "fan-out", "PostgreSQL: time")
    if seconds is not None and memory is not None and count == 10_000:
        verdicts.append(("fan-out of 10,000 with rollback, SQLite: under 100 MB peak",
                         f"{memory['endaction']:.0f} MiB", memory["endaction"] < 100))
        verdicts.append(("... and no slower than the 4.2 s measured when the issue was filed",
                         f"{seconds['endaction']:.2f} s", seconds["endaction"] <= 4.2))
        if postgres is not None:
            ratio = postgres["endaction"] / seconds["endaction"]
            verdicts.append(("... PostgreSQL within 1.3x of SQLite",
                             f"{postgres['endaction']:.2f} s against "
                             f"{seconds['endaction']:.2f} s: {ratio:.2f}x", ratio <= 1.3))
    return verdicts


def markdown(found: dict[str, Any]) -> str:
    """The report of a run: the machine, the table of both sides, and the targets' verdicts."""
    m = found["machine"]
    how = ("steps of one workflow" if found["dbos_fanout"] == "steps"
           else "child workflows on a queue")
    dbos = (f"DBOS {m['dbos']} (its fan-out: {how})" if "dbos" in m
            else "DBOS not installed")
    lines = [f"Machine: {m['cores']} cores, Python {m['python']}, SQLite {m['sqlite']}, "
             f"{m.get('postgresql', 'no PostgreSQL')}, {dbos}",
             "", "| case | endaction | DBOS | ratio |", "|---|---|---|---|"]
    for row in found["rows"]:
        lines.append(f"| {row['case']} | {_figure(row['endaction'], row['unit'])} | "
                     f"{_figure(row['dbos'], row['unit'])} | {row['ratio']} |")
    verdicts = targets(found)
    if verdicts:
        lines += ["", "| target | this run | met |", "|---|---|---|"]
        lines += [f"| {target} | {figures} | {'yes' if met else 'no'} |"
                  for target, figures, met in verdicts]
    return "\n".join(lines)
