"""What `revert` answers, and what the engine makes of it.

The answer is an opposite command, a native revert, or nothing to revert (with what becomes of the
ledger row). Several resources of one command are reverted last made first, and one given up on does
not stop the others.
"""

from __future__ import annotations

from typing import Any

from persistence import SqlStore
from statemachines import (
    Command,
    CommandContext,
    CommandRegistry,
    CommandStatus,
    Compensation,
    Engine,
    HostResult,
    Outcome,
    ResourceRef,
    RevertState,
)
from statemachines.example.vm import (
    IMAGE,
    VM_COMMANDS,
    ImageInventory,
    ImageRow,
    Plan,
    RemoveImage,
    SimulatedAgent,
)
from statemachines.testing import ManualClock
from tests.worlds import images_in


class Makes(Command):
    """Adds the images its parameters name, in one step each.

    Each image is a row in the inventory and a copy on the agent; `fails` makes its last copy fail.
    `answer` says what `revert` returns.
    """

    type_name = "Makes"

    def execute(self, ctx: CommandContext) -> None:
        self._make(ctx, 0)

    def next_step(self, ctx: CommandContext) -> None:
        if ctx.step <= len(self.parameters["images"]):
            self._make(ctx, ctx.step - 1)

    def _make(self, ctx: CommandContext, index: int) -> None:
        image = self.parameters["images"][index]
        ctx.add_resource(ResourceRef(IMAGE, image))
        ctx.ledger(ImageInventory).add(ImageRow(image, "vm", self.record.root_id, "t"))
        last = index == len(self.parameters["images"]) - 1
        ctx.start_task("storage", "copy_image",
                       {"source": "t", "image": image,
                        "inject_failure": last and self.parameters.get("fails", True)})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation | None:
        answer = self.parameters.get("answer", "remove")
        if answer == "remove":
            return Compensation(RemoveImage.type_name, {"image": resource.id})
        if answer == "native":
            return Compensation(RemoveImage.type_name, {"image": resource.id}, native=True)
        if answer == "drop_row":
            ctx.ledger(ImageInventory).remove(resource.id)
        return None  # "keep_row" keeps it: a contradiction the engine refuses


class Both(Command):
    """Two children: the first makes `x` and is reverted as its parameters say; the second fails."""

    type_name = "Both"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_child("Makes", {"images": ["x"], "fails": False,
                                "answer": self.parameters["answer"]})
        ctx.add_child("Makes", {"images": ["y"]})


def _run(store: SqlStore, agent: SimulatedAgent, root_type: str = "Makes",
         **parameters: Any) -> tuple[str, Engine]:
    clock = ManualClock()
    engine = Engine(store, {"storage": agent}, CommandRegistry([*VM_COMMANDS, Makes, Both]),
                    clock=clock, sleep=clock.sleep)
    if root_type == "Makes":
        parameters = {"images": ["a", "b", "c"], **parameters}
    root = engine.submit(root_type, parameters)
    engine.run_until_idle()
    return root, engine


def test_several_resources_of_one_command_are_undone_last_made_first(store: SqlStore) -> None:
    agent = SimulatedAgent()
    root, _ = _run(store, agent)
    commands, _ = store.tree(root)
    top = next(c for c in commands if c.id == root)
    assert (top.status, top.outcome, top.step) == (CommandStatus.ENDED_FAILURE,
                                                   Outcome.FAILED, 3)
    assert top.resources == (("image", "a"), ("image", "b"), ("image", "c"))
    removals = sorted((c.created_at, c.entity_id) for c in commands if c.type == "RemoveImage")
    assert [image for _, image in removals] == ["c", "b", "a"]
    assert {r.resource.id: r.state for r in store.reverts()} == {
        "a": RevertState.REVERTED, "b": RevertState.REVERTED, "c": RevertState.REVERTED}
    assert agent.images == set() and images_in(store) == []


def test_a_resource_given_up_on_does_not_stop_the_others_from_being_undone(
        store: SqlStore) -> None:
    def plan(verb: str, parameters: Any) -> Plan:
        if verb == "delete_image" and parameters["image"] == "b":
            return Plan(result=HostResult.FAILURE)
        return Plan(result=HostResult.FAILURE if parameters.get("inject_failure")
                    else HostResult.SUCCESS)

    agent = SimulatedAgent(decide=plan)
    root, _ = _run(store, agent)
    top = store.command(root)
    assert top is not None
    assert (top.status, top.outcome) == (CommandStatus.ROLLBACK_FAILED, Outcome.REVERT_FAILED)
    assert top.error is not None and "image:b could not be reverted" in top.error
    assert {r.resource.id: r.state for r in store.reverts()} == {
        "a": RevertState.REVERTED, "b": RevertState.REVERT_FAILED, "c": RevertState.REVERTED}
    assert agent.images == {"b"} and [r.id for r in images_in(store)] == ["b"]


def test_outcomes_say_whose_work_failed_and_how_the_rest_was_undone(store: SqlStore) -> None:
    for answer, reads in (("remove", Outcome.ROLLED_BACK),
                          ("native", Outcome.ROLLED_BACK_NATIVELY)):
        root, _ = _run(store, SimulatedAgent(), "Both", answer=answer)
        commands, _ = store.tree(root)
        made = {c.parameters["images"][0]: c for c in commands if c.type == "Makes"}
        assert (made["x"].outcome, made["x"].own_work_succeeded) == (reads, True), answer
        assert (made["y"].outcome, made["y"].own_work_succeeded) == (Outcome.FAILED, False)
        top = next(c for c in commands if c.id == root)
        assert top.error == f"Makes {made['y'].id}: copy_image failed on agent 'storage'" \
            ": simulated: copy_image failed"
        native = [h.detail for h in store.history(made["x"].id) if h.trigger == "compensate"]
        assert ("(native revert)" in native[0]) == (answer == "native")


def test_nothing_to_undo_reads_reverted_and_the_row_is_the_hooks_to_drop(
        store: SqlStore) -> None:
    """A `revert` returning None starts no opposite command, and the resource reads `reverted`.

    The ledger row is gone because the hook dropped it, and nothing is left behind.
    """
    agent = SimulatedAgent()
    root, _ = _run(store, agent, answer="drop_row")
    commands, _ = store.tree(root)
    assert [c.type for c in commands] == ["Makes"]
    assert {r.resource.id: r.state for r in store.reverts()} == {
        "a": RevertState.REVERTED, "b": RevertState.REVERTED, "c": RevertState.REVERTED}
    assert images_in(store) == []
    details = [h.detail for h in store.history(root) if h.trigger == "compensate"]
    assert details == [f"nothing to revert for image:{i}" for i in "cba"]


def test_nothing_to_undo_with_the_row_still_there_is_refused_visibly(store: SqlStore) -> None:
    """A `revert` that says nothing is left of a resource its ledger still holds contradicts itself.

    The command gives up on it (revert_failed, for a cleanup) rather than leave the row behind
    silently.
    """
    root, _ = _run(store, SimulatedAgent(), answer="keep_row", images=["a"])
    top = store.command(root)
    assert top is not None
    assert (top.status, top.outcome) == (CommandStatus.ROLLBACK_FAILED, Outcome.REVERT_FAILED)
    assert "revert returned None for image:a (nothing to revert), but its ledger still holds " \
           "it" in (top.error or "")
    assert [r.state for r in store.reverts()] == [RevertState.REVERT_FAILED]
