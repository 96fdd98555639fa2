"""The VM demo's commands: `demo` creates a VM whose failed copies roll the others back, `resume`
finishes after a crash, `cleanup` retries what gave up. They run the example on its local-disk host;
the `endaction` group adds them beside its domain-free commands.

Exit status: 0 when the run reached a terminal state and nothing was left behind (a cleanly
rolled-back failure included), 3 when something was left behind, 2 for bad usage, 1 when the
database or the storage failed.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from persistence.schema_version import NoSchema
from statemachines import AgentError, Limits, TickReport
from statemachines.cli.database import db_option, finite, json_option
from statemachines.cli.errors import EXIT_LEFT_BEHIND, EXIT_OK, UsageProblem
from statemachines.cli.progress import Progress, describe, make_progress

from .commands import AddVmFromTemplate, add_vm_parameters, image_name
from .demo_report import (
    build_cleanup_report,
    build_report,
    exit_code,
    render_cleanup_text,
    render_text,
)
from .demo_world import (
    TEMPLATE_BYTES,
    DemoWorld,
    StorageUnusable,
    open_world,
    template_name,
)

STORAGE_HELP = "storage directory of the local-disk agent [default: ./endaction-data/storage]"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class HostChoice:
    """Where the storage host runs: in this process over `storage`, or behind `agent_url`."""

    storage: Path | None = None
    agent_url: str | None = None
    token_file: Path | None = None

    def open(self, db: str | None, on_commit: Callable[[TickReport], None] | None = None,
             **options: Any) -> DemoWorld:
        return open_world(db, self.storage, on_commit, agent_url=self.agent_url,
                          agent_token_file=self.token_file, **options)


def host_options(command: F) -> F:
    """--storage, or --agent-url with --agent-token-file, handed to the command as `host`."""

    @functools.wraps(command)
    def with_host(*args: Any, storage: Path | None, agent_url: str | None,
                  agent_token_file: Path | None, **kwargs: Any) -> Any:
        if agent_url is not None and storage is not None:
            raise UsageProblem("--storage names a host in this process and --agent-url one "
                               "in another: give one of them")
        if agent_token_file is not None and agent_url is None:
            raise UsageProblem("--agent-token-file goes with --agent-url")
        return command(*args, host=HostChoice(storage, agent_url, agent_token_file), **kwargs)

    options = [
        click.option("--storage", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help=STORAGE_HELP),
        click.option("--agent-url", default=None, metavar="URL",
                     help="use the storage host at URL (`endaction agent serve`) instead of "
                          "one in this process"),
        click.option("--agent-token-file", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, metavar="F", help="the file holding that host's token"),
    ]
    for option in reversed(options):
        with_host = option(with_host)
    return with_host  # type: ignore[return-value]


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
@host_options
@click.option("--task-timeout", type=click.FloatRange(min=1, max=10**7), default=None,
              metavar="S", callback=finite,
              help="seconds a copy or delete may take before it is aborted "
                   "[default: 600 + 0.25 per disk]")
@click.option("--crash-after", type=click.IntRange(min=1), default=None, metavar="K",
              help="die abruptly (SIGKILL) after K steps have been persisted")
@json_option
def demo(count: int, fail: tuple[int, ...], fail_rollback: tuple[int, ...], db: str | None,
         host: HostChoice, task_timeout: float | None, crash_after: int | None,
         as_json: bool) -> None:
    """Create a VM from a template with COUNT disks; failed copies roll the others back."""
    _disk_indexes(fail, count, "--fail")
    _disk_indexes(fail_rollback, count, "--fail-rollback")
    if fail_rollback and host.agent_url is not None:
        raise UsageProblem("--fail-rollback makes deletes fail inside this process's host; "
                           "with --agent-url the host is another process")
    progress = make_progress()
    crash = _CrashAfter(crash_after, progress)
    limits = Limits(task_timeout=task_timeout or 600 + 0.25 * count)
    with progress, closing(host.open(db, crash, limits=limits)) as world:
        sources = [template_name(i) for i in range(count)]
        try:
            for name in sources:
                world.agent.ensure_template(name, TEMPLATE_BYTES)
        except (OSError, AgentError) as err:
            raise StorageUnusable(f"cannot write the template disks in {world.agent.templates}:"
                                  f" {err}") from err
        vm = f"vm-{uuid.uuid4().hex[:8]}"
        world.agent.failing_deletes = frozenset(image_name(vm, i) for i in fail_rollback)
        if fail_rollback and not fail:
            progress.note("note: without --fail nothing is rolled back, so --fail-rollback "
                          "has nothing to fail")
        root_id = world.engine.submit(AddVmFromTemplate.type_name,
                                      add_vm_parameters(vm, sources, fail))
        crash.step(f"submitted AddVmFromTemplate {root_id} for {vm} with {count} disk(s)")
        world.engine.run_until_idle(on_wait=progress.note)
        report = build_report(world.store, world.agent, root_id)
    sys.exit(_finish(report, as_json))


@click.command()
@db_option
@host_options
@json_option
def resume(db: str | None, host: HostChoice, as_json: bool) -> None:
    """Recover after a crash and finish whatever was left; report the last root command."""
    progress = make_progress()
    with progress, closing(_existing_world(db, host, progress, "nothing to resume")) as world:
        root_id = world.store.last_root_id()
        if root_id is None:
            raise UsageProblem(f"no command in {world.store.url}: nothing to resume")
        world.engine.recover()
        if world.engine.is_idle():
            progress.note("nothing left to do; reporting the last root command")
        else:
            world.engine.run_until_idle(on_wait=progress.note)
        report = build_report(world.store, world.agent, root_id)
    sys.exit(_finish(report, as_json))


@click.command()
@db_option
@host_options
@json_option
def cleanup(db: str | None, host: HostChoice, as_json: bool) -> None:
    """Retry the compensations that gave up (revert_failed), now that the fault may be gone.

    Runs whatever else is unfinished too, as `resume` does. Exit status 0 when nothing is
    left behind, 3 when something still is."""
    progress = make_progress()
    with progress, closing(_existing_world(db, host, progress,
                                           "nothing to clean up")) as world:
        world.engine.recover()
        retried = world.engine.cleanup()
        progress.note(f"retrying {len(retried)} resource(s) left revert_failed")
        world.engine.run_until_idle(on_wait=progress.note)
        report = build_cleanup_report(world.store, world.agent, retried)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render_cleanup_text(report))
    sys.exit(EXIT_OK if not report["leftovers"] and not report["still_failed"]
             else EXIT_LEFT_BEHIND)


def _existing_world(db: str | None, host: HostChoice, progress: Progress,
                    missing: str) -> DemoWorld:
    try:
        return host.open(db, progress, create=False, missing=missing)
    except NoSchema as err:
        raise UsageProblem(f"{err}: {missing}") from err
