"""One root's tree: every command and task in it, nested as the tree is.

Each shows its state, outcome, cause and times, and each command the revert state of what it
made.

The tree is read with one `SqlStore.tree` call and the revert states of its own commands
only (never the whole table). It is drawn with a stack, not recursion: a tree may be deeper
than Python's recursion limit (`docs/explanation/design.md`, bounds). A tree larger than
`NODES_SHOWN` is cut there, saying how much is left out and which command shows all of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from persistence import SqlStore
from persistence.revert_listing import reverts_of_owners

from ..core.machines.command_machine import COMMAND_MACHINE
from ..core.machines.reasons import ExecutionReason
from ..core.records.records import CommandRecord, TaskRecord, resources_of
from ..core.records.revert_state import ResourceRef, ResourceRevert
from .errors import Moved, NotFound
from .layout import Site, frame, live, moment, outcome, state
from .markup import Safe, clipped, fill, join, path

NODES_SHOWN = 2000
CAUSE_SHOWN = 1500


@dataclass(frozen=True)
class _Close:
    """Marks where a command's nested list ends, on the drawing stack."""


_CLOSE = _Close()


def tree_page(site: Site, store: SqlStore, root_id: str, note: str | None = None) -> Safe:
    """The page of the root `root_id`: its summary, its tree, and a cancel form if allowed.

    The id of a command that is not a root moves to that command in its root's tree. The form
    is offered only with actions allowed, to a root that has not ended and is not held;
    `note` is the one-line answer to an action just taken.
    """
    root = store.command(root_id)
    if root is None:
        raise NotFound(f"no root with id {clipped(root_id, 100)!r} in {store.url}")
    if root.parent_id is not None:
        raise Moved(path("roots", root.root_id) + f"#c-{root.id}")
    commands, tasks = store.tree(root_id)
    held = store.held_roots().get(root_id)
    owners = [c.id for c in commands if resources_of(c)]
    reverts = {(r.resource, r.owner): r for r in reverts_of_owners(store, owners)}
    drawn, left_out = _tree(root, commands, tasks, reverts)
    summary = fill(
        '<dl class="summary"><dt>Status</dt><dd>$state $outcome$held</dd>'
        "<dt>Cause</dt><dd class=\"cause\">$cause</dd>"
        "<dt>Created</dt><dd>$created</dd><dt>Updated</dt><dd>$updated</dd>"
        "<dt>Size</dt><dd>$commands command(s), $tasks task(s)</dd></dl>",
        state=state(root.status), outcome=outcome(root.outcome),
        held=fill(' <span class="state bad">HELD</span> $why', why=held) if held else Safe(""),
        cause=clipped(root.error, CAUSE_SHOWN) or "-", created=moment(root.created_at),
        updated=moment(root.updated_at), commands=len(commands), tasks=len(tasks))
    cut = fill('<p class="cut">$n more command(s) and task(s) not shown: '
               "<code>endaction status $id</code> prints all of them</p>",
               n=left_out, id=root.id) if left_out else Safe("")
    links = fill('<p class="links"><a href="$history">history timeline</a> · '
                 '<a href="$machine">machine of the root</a></p>',
                 history=path("roots", root.id, "history"), machine=path("machine", root.id))
    body = join([links, _cancel_form(site, root, held), live(join([summary, drawn, cut]))])
    return frame(site, f"{root.type} {root.id}", body,
                 heading=fill("$type <code>$id</code>", type=root.type, id=root.id), note=note)


def _cancel_form(site: Site, root: CommandRecord, held: str | None) -> Safe:
    if not site.actions or COMMAND_MACHINE.is_terminal(root.status) or held is not None:
        return Safe("")
    return fill(
        '<form class="action" method="post" action="$action">'
        '<label>token <input type="password" name="token" autocomplete="off" required>'
        "</label> "
        '<input name="reason" value="cancelled from the web view" size="28"> '
        '<button class="danger">Cancel this root</button></form>',
        action=path("roots", root.id, "cancel"))


def _tree(root: CommandRecord, commands: Iterable[CommandRecord], tasks: Iterable[TaskRecord],
          reverts: dict[tuple[ResourceRef, str], ResourceRevert]) -> tuple[Safe, int]:
    """The nested lists, and how many commands and tasks were left out past NODES_SHOWN."""
    children: dict[str, list[CommandRecord]] = {}
    for command in commands:
        if command.parent_id is not None:
            children.setdefault(command.parent_id, []).append(command)
    tasks_of: dict[str, list[TaskRecord]] = {}
    for task in tasks:
        tasks_of.setdefault(task.command_id, []).append(task)
    out: list[str] = ['<ul class="tree">']
    shown = left_out = 0
    stack: list[CommandRecord | TaskRecord | _Close] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, _Close):
            out.append("</ul></li>")
            continue
        if shown >= NODES_SHOWN:
            left_out += 1
            if isinstance(item, CommandRecord):
                stack.extend(children.get(item.id, ()))
                stack.extend(tasks_of.get(item.id, ()))
            continue
        shown += 1
        if isinstance(item, TaskRecord):
            out.append(_task(item))
            continue
        out.append(_command(item, reverts))
        out.append("<ul>")
        stack.append(_CLOSE)
        # Popped in order: its tasks first, then its children, as `endaction status` lists.
        stack += reversed([*tasks_of.get(item.id, ()), *children.get(item.id, ())])
    out.append("</ul>")
    return Safe("\n".join(out)), left_out


def _command(command: CommandRecord, reverts: dict[tuple[ResourceRef, str], ResourceRevert]) -> str:
    made = []
    for resource in resources_of(command):
        revert = reverts.get((resource, command.id))
        made.append(fill('<span class="resource">$what$state</span>', what=str(resource),
                         state=fill(" ($s)", s=str(revert.state)) if revert else Safe("")))
    reverting = command.execution_reason == ExecutionReason.ROLLBACK_FLOW
    return fill(
        '<li class="command" id="c-$id" data-id="$id" data-status="$status">'
        '<div class="node"><span class="kind">command</span> '
        '<a class="type" href="$machine" title="its machine and the path it took">$type</a> '
        '<code class="id">$id</code> $entity$flow $state $outcome$step'
        '<div class="times">created $created · updated $updated</div>'
        "$cause$made</div>",
        id=command.id, status=str(command.status), machine=path("machine", command.id),
        type=command.type,
        entity=fill('<span class="entity">$e</span> ', e=f"{command.entity_type}:"
                    f"{command.entity_id}") if command.entity_id else Safe(""),
        flow=Safe('<span class="flow">ROLLBACK_FLOW</span>') if reverting else Safe(""),
        state=state(command.status), outcome=outcome(command.outcome),
        step=fill(' <span class="step">step $n</span>', n=command.step)
        if command.step > 1 else Safe(""),
        created=moment(command.created_at), updated=moment(command.updated_at),
        cause=fill('<div class="cause" title="$full">$text</div>',
                   full=clipped(command.error, 8000), text=clipped(command.error, CAUSE_SHOWN))
        if command.error else Safe(""),
        made=fill('<div class="made">made: $list</div>', list=join(made, ", ")) if made
        else Safe(""))


def _task(task: TaskRecord) -> str:
    host = "/".join(str(x) for x in (task.host_status, task.host_result) if x)
    said = task.message if task.message and str(task.host_result) != "success" else None
    attempts = f"attempt {task.attempt} of {task.max_attempts}" + (
        ", retried" if task.retried else "") if task.max_attempts > 1 else ""
    return fill(
        '<li class="task" id="t-$id" data-id="$id" data-status="$status"><div class="node">'
        '<span class="kind">task</span> <a class="type" href="$machine">$verb</a> '
        '<code class="id">$id</code> on <span class="agent">$agent</span> $state '
        '$host$attempts<div class="times">created $created · updated $updated</div>'
        "$said</div></li>",
        id=task.id, status=str(task.status), machine=path("machine", task.id),
        verb=task.verb, agent=task.agent, state=state(task.status),
        host=fill('<span class="host">host $h</span> ', h=host) if host else Safe(""),
        attempts=fill('<span class="attempts">$a</span>', a=attempts) if attempts
        else Safe(""),
        created=moment(task.created_at), updated=moment(task.updated_at),
        said=fill('<div class="cause">$m</div>', m=clipped(said, CAUSE_SHOWN)) if said
        else Safe(""))

