"""`endaction demo`: create a VM whose failed copies roll the others back.

It runs on the VM example's storage host; the VM application (`application.py`) offers it
beside the group's own commands.

Exit status, as `resume`'s: 0 when the VM was made and nothing was left behind, 5 when it
failed and was rolled back cleanly, 3 when something was left behind, 2 for bad usage, 1 when
the database or the storage failed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from contextlib import closing
from typing import Any

import click

from statemachines import AgentError, Limits, TickReport
from statemachines.toolkit import (
    AgentChoice,
    Progress,
    UsageProblem,
    agent_options,
    db_option,
    describe,
    finite,
    json_option,
    make_progress,
    open_app,
    run_exit_status,
)

from .commands import AddVmFromTemplate, add_vm_parameters, image_name
from .demo_report import render_text, vm_report
from .domain_app import domain_app
from .storage_agents import TEMPLATE_BYTES, StorageUnusable, storage_host, template_name


def _finish(report: dict[str, Any], as_json: bool) -> int:
    """Print the report once the live display is closed, so the two never interleave."""
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render_text(report))
    return run_exit_status(report)


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


def _disk_indexes(indexes: tuple[int, ...], count: int, option: str) -> None:
    bad = [i for i in indexes if not 0 <= i < count]
    if bad:
        raise click.BadParameter(
            f"{', '.join(map(str, bad))} out of range: --images {count} has disks 0..{count - 1}",
            param_hint=option)


@click.command()
@click.option("--images", "count", type=click.IntRange(1, 100_000), required=True,
              help="number of template disks to clone (each template is 2 MiB, and so is "
                   "each copy)")
@click.option("--fail", "fail", type=int, multiple=True, metavar="I",
              help="0-based index of a disk whose copy must fail (repeatable)")
@click.option("--fail-rollback", "fail_rollback", type=int, multiple=True, metavar="I",
              help="0-based index of a disk whose RemoveImage must fail for good in this "
                   "process: it ends revert_failed, for `endaction cleanup` (repeatable)")
@db_option
@agent_options
@click.option("--task-timeout", type=click.FloatRange(min=1, max=10**7), default=None,
              metavar="S", callback=finite,
              help="seconds a copy or delete may take before it is aborted "
                   "[default: 600 + 0.25 per disk]")
@click.option("--crash-after", type=click.IntRange(min=1), default=None, metavar="K",
              help="die abruptly (SIGKILL) after K steps have been persisted")
@json_option
def demo(count: int, fail: tuple[int, ...], fail_rollback: tuple[int, ...], db: str | None,
         agents_at: AgentChoice, task_timeout: float | None, crash_after: int | None,
         as_json: bool) -> None:
    """Create a VM from a template with COUNT disks; failed copies roll the others back."""
    _disk_indexes(fail, count, "--fail")
    _disk_indexes(fail_rollback, count, "--fail-rollback")
    if fail_rollback and agents_at.url is not None:
        raise UsageProblem("--fail-rollback makes deletes fail inside this process's host; "
                           "with --agent-url the host is another process")
    progress = make_progress()
    crash = _CrashAfter(crash_after, progress)
    limits = Limits(task_timeout=task_timeout or 600 + 0.25 * count)
    with progress, closing(open_app(domain_app, db, agents_at, limits=limits,
                                    on_commit=crash)) as world:
        host = storage_host(world.agents)
        sources = [template_name(i) for i in range(count)]
        try:
            for name in sources:
                host.ensure_template(name, TEMPLATE_BYTES)
        except (OSError, AgentError) as err:
            raise StorageUnusable(f"cannot write the template disks in {host.templates}:"
                                  f" {err}") from err
        vm = f"vm-{uuid.uuid4().hex[:8]}"
        host.failing_deletes = frozenset(image_name(vm, i) for i in fail_rollback)
        if fail_rollback and not fail:
            progress.note("note: without --fail nothing is rolled back, so --fail-rollback "
                          "has nothing to fail")
        root_id = world.engine.submit(AddVmFromTemplate.type_name,
                                      add_vm_parameters(vm, sources, fail))
        crash.step(f"submitted AddVmFromTemplate {root_id} for {vm} with {count} disk(s)")
        world.engine.run_until_idle(on_wait=progress.note)
        report = vm_report(world.store, world.agents, root_id)
    sys.exit(_finish(report, as_json))
