"""The `endaction` group: `demo` and `resume` here, the read-only views in their own modules.

Exit status: 0 when the run reached a terminal state and nothing was left behind (a cleanly
rolled-back failure included), 3 when something was left behind, 2 for bad usage, 1 when the
database or the storage failed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import click

from persistence.schema_version import NoSchema

from ..example import add_vm_parameters
from ..example.vm_commands import AddVmFromTemplate
from ..tick_report import TickReport
from .database import db_option, json_option
from .db_cmd import db
from .demo_world import TEMPLATE_BYTES, open_world, template_name
from .diagrams_cmd import diagrams
from .errors import EndactionGroup, UsageProblem
from .inspect_cmd import history, status, trace
from .progress import Progress, describe, make_progress
from .run_report import build_report, exit_code, render_text

STORAGE_HELP = "storage directory of the local-disk agent [default: ./endaction-data/storage]"


@click.group(cls=EndactionGroup)
@click.version_option(package_name="endaction")
def cli() -> None:
    """Persisted command and task state machines that roll back with opposite commands."""


def _finish(report: dict[str, Any], as_json: bool) -> int:
    """Print the report once the live display is closed, so the two never interleave."""
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render_text(report))
    return exit_code(report)


class _CrashAfter:
    """Counts persisted steps and kills the process, like `kill -9`, after the K-th."""

    def __init__(self, limit: int | None, progress: Progress) -> None:
        self.limit = limit
        self.progress = progress
        self.steps = 0

    def step(self, what: str) -> None:
        self.steps += 1
        self.progress.note(f"step {self.steps}: {what}")
        if self.limit is not None and self.steps >= self.limit:
            self.progress.note(f"crashing after {self.steps} persisted step(s), as asked")
            os.kill(os.getpid(), signal.SIGKILL)

    def __call__(self, report: TickReport) -> None:
        self.progress.observe(report)
        self.step(describe(report))


@cli.command()
@click.option("--images", "count", type=click.IntRange(1, 100_000), required=True,
              help="number of template disks to clone")
@click.option("--fail", "fail", type=int, multiple=True, metavar="I",
              help="0-based index of a disk whose copy must fail (repeatable)")
@db_option
@click.option("--storage", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=STORAGE_HELP)
@click.option("--crash-after", type=click.IntRange(min=1), default=None, metavar="K",
              help="die abruptly (SIGKILL) after K steps have been persisted")
@json_option
def demo(count: int, fail: tuple[int, ...], db: str | None, storage: Path | None,
         crash_after: int | None, as_json: bool) -> None:
    """Create a VM from a template with COUNT disks; failed copies roll the others back."""
    bad = [i for i in fail if not 0 <= i < count]
    if bad:
        raise click.BadParameter(
            f"{', '.join(map(str, bad))} out of range: --images {count} has disks 0..{count - 1}",
            param_hint="--fail")
    progress = make_progress()
    crash = _CrashAfter(crash_after, progress)
    with progress, closing(open_world(db, storage, crash)) as world:
        sources = [template_name(i) for i in range(count)]
        for name in sources:
            world.agent.ensure_template(name, TEMPLATE_BYTES)
        vm = f"vm-{uuid.uuid4().hex[:8]}"
        root_id = world.engine.submit(AddVmFromTemplate.type_name,
                                      add_vm_parameters(vm, sources, fail))
        crash.step(f"submitted AddVmFromTemplate {root_id} for {vm} with {count} disk(s)")
        world.engine.run_until_idle()
        report = build_report(world.store, world.agent, root_id)
    sys.exit(_finish(report, as_json))


@cli.command()
@db_option
@click.option("--storage", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=STORAGE_HELP)
@json_option
def resume(db: str | None, storage: Path | None, as_json: bool) -> None:
    """Recover after a crash and finish whatever was left; report the last root command."""
    progress = make_progress()
    try:
        world = open_world(db, storage, progress, create=False, missing="nothing to resume")
    except NoSchema as err:
        raise UsageProblem(f"{err}: nothing to resume") from err
    with progress, closing(world):
        root_id = world.store.last_root_id()
        if root_id is None:
            raise UsageProblem(f"no command in {world.store.url}: nothing to resume")
        world.engine.recover()
        if world.engine.is_idle():
            progress.note("nothing left to do; reporting the last root command")
        else:
            world.engine.run_until_idle()
        report = build_report(world.store, world.agent, root_id)
    sys.exit(_finish(report, as_json))


for view in (db, diagrams, status, history, trace):
    cli.add_command(view)


def main() -> None:
    cli()
