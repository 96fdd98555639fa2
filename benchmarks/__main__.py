"""The harness's command line: `python -m benchmarks COMMAND`.

COMMAND is one of `rollback | compare | compare-dbos | recover | list-roots | property-kit | all`.

Every figure is measured in a process of its own (peak memory is per process); `compare`
runs its peers in the same invocation, so their ratios compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _in_own_process(*args: str, stdin: str | None = None) -> dict[str, Any]:
    # The dirty pages of the case before (half a gigabyte after N = 100,000) would otherwise
    # be written back during this one, and its commits' fsyncs would wait behind them.
    os.sync()
    done = subprocess.run([sys.executable, "-m", "benchmarks", *args, "--json"], input=stdin,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks {' '.join(args)} failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _say(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    shown = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in result.items()
             if k != "rows"}
    print("  ".join(f"{k}={v}" for k, v in shown.items()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rollback = commands.add_parser("rollback", help="the seed's scenario at N disks")
    rollback.add_argument("--count", type=int, default=1000)
    rollback.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite)")
    compare = commands.add_parser("compare", help="endaction beside TaskFlow and raw SQL")
    compare.add_argument("--count", type=int, default=1000)
    compare.add_argument("--taskflow-count", type=int, default=None,
                         help="N for TaskFlow (default: --count; it is slow)")
    compare.add_argument("--no-taskflow", action="store_true", help="leave TaskFlow out")
    versus = commands.add_parser("compare-dbos", help="endaction beside DBOS Transact on "
                                 "the same saga: throughput, latency, fan-out")
    versus.add_argument("--db", default=None, help="a PostgreSQL URL for endaction's "
                        "PostgreSQL cases (default: they are left out)")
    versus.add_argument("--dbos-db", default=None, help="DBOS's PostgreSQL database "
                        "(default: --db's server, database bench_dbos)")
    versus.add_argument("--quick", action="store_true",
                        help="200 roots for K=2 and 100 for K=10 (not 1000 and 400)")
    versus.add_argument("--fanout", type=int, default=10_000,
                        help="children of the fan-out case (default 10,000)")
    versus.add_argument("--dbos-fanout", choices=("steps", "queue"), default="steps",
                        help="DBOS's fan-out: steps of one workflow, or child workflows "
                        "on a queue (much slower)")
    recover = commands.add_parser("recover", help="recovery of N in-flight tasks")
    recover.add_argument("--count", type=int, default=10000)
    listing = commands.add_parser("list-roots", help="list_roots pages over 100,000 roots, "
                                  "on SQLite and (with --db) PostgreSQL")
    listing.add_argument("--roots", type=int, default=100_000)
    listing.add_argument("--repeat", type=int, default=20, help="timed runs per case")
    listing.add_argument("--db", default=None,
                         help="a PostgreSQL URL, to run there too (default: SQLite only)")
    every = commands.add_parser("all", help="every case of the targets, then the table and "
                                "the verdicts, as Markdown (minutes: N = 100,000, TaskFlow)")
    every.add_argument("--db", default=None,
                       help="a PostgreSQL URL for its case (default: left out)")
    every.add_argument("--no-taskflow", action="store_true", help="leave TaskFlow out")
    floor = commands.add_parser("floor", help=argparse.SUPPRESS)
    floor.add_argument("--count", type=int, required=True)
    floor.add_argument("--without-history", action="store_true")
    taskflow = commands.add_parser("taskflow", help=argparse.SUPPRESS)
    taskflow.add_argument("--count", type=int, required=True)
    child = commands.add_parser("recover-child", help=argparse.SUPPRESS)
    child.add_argument("--count", type=int, required=True)
    child.add_argument("--db", required=True)
    case = commands.add_parser("saga-case", help=argparse.SUPPRESS)
    case.add_argument("side", choices=("endaction", "dbos"))
    case.add_argument("case", choices=("throughput", "sqlite", "latency", "fanout"))
    case.add_argument("--db", default=None)
    case.add_argument("--k", type=int, default=2)
    case.add_argument("--roots", type=int, default=200)
    case.add_argument("--workers", type=int, default=1)
    case.add_argument("--variant", choices=("defaults", "tuned"), default="defaults")
    case.add_argument("--runs", type=int, default=30)
    case.add_argument("--count", type=int, default=10_000)
    case.add_argument("--how", choices=("steps", "queue"), default="steps")
    saga_worker = commands.add_parser("saga-worker", help=argparse.SUPPRESS)
    saga_worker.add_argument("side", choices=("endaction", "dbos"))
    saga_worker.add_argument("--db", required=True)
    saga_worker.add_argument("--name", required=True)
    saga_worker.add_argument("--variant", choices=("defaults", "tuned"), default="defaults")
    for sub in (rollback, compare, versus, recover, listing, every, floor, taskflow, child,
                case):
        sub.add_argument("--json", action="store_true", help="one JSON object per result")
    kit = commands.add_parser("property-kit", help="the property kit on a domain with a "
                              "planted leak: seconds to find and shrink it")
    kit.add_argument("--runs", type=int, default=3)
    kit.add_argument("--json", action="store_true")
    return parser


def _property_kit(args: argparse.Namespace) -> None:
    from .property_kit import main as property_kit
    summary = property_kit(args.runs, args.json)
    if args.json:
        print(json.dumps(summary))


def _rollback(args: argparse.Namespace) -> None:
    from .rollback import run
    _say(run(args.count, args.db), args.json)


def _floor(args: argparse.Namespace) -> None:
    from .sql_floor import run as floor_run
    profile = json.loads(sys.stdin.read())
    _say(floor_run(args.count, profile["rows"], profile["ticks"],
                   with_history=not args.without_history,
                   history_bytes=profile["history_bytes"]), args.json)


def _taskflow(args: argparse.Namespace) -> None:
    from .taskflow_peer import run as taskflow_run
    _say(taskflow_run(args.count), args.json)


def _recover_child(args: argparse.Namespace) -> None:
    from .recover import child as recover_child
    recover_child(args.count, Path(args.db))


def _recover(args: argparse.Namespace) -> None:
    from .recover import run as recover_run
    _say(recover_run(args.count), args.json)


def _list_roots(args: argparse.Namespace) -> None:
    from .list_roots import run as list_roots_run
    for result in list_roots_run(args.roots, args.db, args.repeat):
        _say(result, args.json)


def _compare_dbos(args: argparse.Namespace) -> None:
    from .compare_dbos import collect, markdown
    found = collect(_in_own_process, args.db, args.dbos_db, args.quick, args.fanout,
                    args.dbos_fanout)
    print(json.dumps(found) if args.json else markdown(found))


def _saga_worker(args: argparse.Namespace) -> None:
    _saga_side(args.side).serve(args.db, args.name, args.variant)


def _all(args: argparse.Namespace) -> None:
    from .summary import collect, markdown
    found = collect(_in_own_process, lambda n, taskflow: _compare(n, n, taskflow),
                    args.db, not args.no_taskflow)
    print(json.dumps(found) if args.json else markdown(found))


def _compare_cases(args: argparse.Namespace) -> None:
    for result in _compare(args.count, args.taskflow_count or args.count,
                           not args.no_taskflow):
        _say(result, args.json)


_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "property-kit": _property_kit, "rollback": _rollback, "floor": _floor,
    "taskflow": _taskflow, "recover-child": _recover_child, "recover": _recover,
    "list-roots": _list_roots, "compare-dbos": _compare_dbos,
    "saga-case": lambda args: _say(_saga_case(args), args.json),
    "saga-worker": _saga_worker, "all": _all, "compare": _compare_cases,
}


def main() -> None:
    """Run the command the arguments name (in each case's own process too: `_in_own_process`)."""
    args = _parser().parse_args()
    _COMMANDS[args.command](args)


def _saga_side(name: str) -> Any:
    """benchmarks/saga_cases.py or benchmarks/dbos_peer.py: the same functions on each."""
    if name == "dbos":
        from . import dbos_peer
        return dbos_peer
    from . import saga_cases
    return saga_cases


def _saga_case(args: argparse.Namespace) -> dict[str, Any]:
    """One side of one compare-dbos case, in this process (and its workers)."""
    side = _saga_side(args.side)
    if args.case in ("throughput", "latency") and not args.db:
        raise SystemExit(f"saga-case {args.case} needs --db (a PostgreSQL URL)")
    if args.case == "throughput":
        result: dict[str, Any] = side.throughput(args.db, args.workers, args.roots, args.k)
    elif args.case == "sqlite":
        result = side.sqlite(args.roots, args.k)
    elif args.case == "latency":
        result = side.latency(args.db, args.variant, args.runs)
    elif args.side == "dbos":
        result = side.fanout(args.count, args.db, args.how)
    else:
        result = side.fanout(args.count, args.db)
    return result


def _compare(count: int, taskflow_count: int, taskflow: bool = True) -> list[dict[str, Any]]:
    """Measure the rollback case on endaction and its peers, each in its own process.

    The peers are the raw-SQL floor with and without history, and TaskFlow (if installed and asked
    for); they run one after the other, and each result gets its ratio to endaction's time.
    """
    from .taskflow_peer import available

    ours = _in_own_process("rollback", "--count", str(count))
    profile = json.dumps({"rows": ours["rows"], "ticks": ours["ticks"],
                          "history_bytes": ours["history_bytes"]})
    results = [ours,
               _in_own_process("floor", "--count", str(count), stdin=profile),
               _in_own_process("floor", "--count", str(count), "--without-history",
                               stdin=profile)]
    if taskflow and available():
        peer = _in_own_process("taskflow", "--count", str(taskflow_count))
        results.append(peer)
    elif taskflow:
        print("TaskFlow is not installed (pip install -e '.[bench]'): left out",
              file=sys.stderr)
    for result in results:
        per_child = result["seconds"] / result["count"]
        result["ms_per_child"] = per_child * 1e3
        result["ratio_to_endaction"] = per_child / (ours["seconds"] / ours["count"])
    return results


if __name__ == "__main__":
    main()
