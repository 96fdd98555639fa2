"""The diagrams come from the machines the engine runs, and diagrams/ never drifts from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from statemachines.core.commands.command import CommandRegistry
from statemachines.core.machines.command_machine import (
    COMMAND_MACHINE,
    COMMAND_TRANSITIONS,
    CommandStatus,
)
from statemachines.core.machines.host_status import HOST_MACHINE
from statemachines.core.machines.shared_machine import SharedMachine, TransitionSpec
from statemachines.core.machines.task_machine import TASK_MACHINE
from statemachines.diagrams import (
    DEFAULT_FORMATS,
    GraphvizMissing,
    dot_source,
    drawing_of,
    machine_drawings,
    mermaid_source,
    write_drawings,
)
from statemachines.diagrams import files as diagram_files
from statemachines.diagrams.readme import ReadmeMismatch, embed_mermaid, mermaid_blocks
from statemachines.example.vm import VM_COMMANDS, CreateCloneOfTemplate
from statemachines.example.vm.seed_flow import seed_flow_drawing

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "diagrams"
HAVE_DOT = shutil.which("dot") is not None


@pytest.mark.parametrize("machine", [COMMAND_MACHINE, TASK_MACHINE, HOST_MACHINE],
                         ids=lambda m: m.kind)
def test_every_transition_is_an_edge(machine: SharedMachine) -> None:
    drawing = drawing_of(machine)
    mermaid, dot = mermaid_source(drawing), dot_source(drawing)
    for spec in machine.transitions:
        for source in spec.sources():
            assert f"  {source} --> {spec.dest}: " in mermaid
            assert f"\t{source} -> {spec.dest} [label=" in dot
            edge = next(line for line in mermaid.splitlines()
                        if line.startswith(f"  {source} --> {spec.dest}: "))
            assert spec.trigger in edge
    for state in machine.states:
        assert f'state "{state}" as {state}' in mermaid
    assert f"[*] --> {machine.initial}" in mermaid


def test_the_override_guard_is_on_the_end_edges() -> None:
    drawing = drawing_of(COMMAND_MACHINE)
    mermaid, dot = mermaid_source(drawing), dot_source(drawing)
    assert "  ending --> ended_success: end [ends_successfully]\n" in mermaid
    assert "  ending --> rolling_back: end [!ends_successfully]\n" in mermaid
    assert 'ending -> ended_success [label="end [ends_successfully]"]' in dot
    # The rule in words, from the guard's docstring, beside the state it is tried in.
    assert "note right of ending" in mermaid
    assert "ROLLBACK_FLOW never" in mermaid and "ROLLBACK_FLOW never" in dot
    for terminal in (CommandStatus.ENDED_SUCCESS, CommandStatus.ENDED_FAILURE,
                     CommandStatus.ROLLBACK_FAILED):
        assert f"  {terminal} --> [*]" in mermaid


def _with(transitions: tuple[TransitionSpec, ...]) -> SharedMachine:
    return SharedMachine("command", CommandStatus, CommandStatus.NOT_STARTED,
                         transitions, terminal=())


def test_changing_a_transition_changes_the_diagram() -> None:
    """The drift check can fail: any change to the table shows in the generated text."""
    base = _with(COMMAND_TRANSITIONS)
    added = _with((*COMMAND_TRANSITIONS,
                   TransitionSpec("abandon", CommandStatus.WAITING, CommandStatus.ENDED_FAILURE)))
    unguarded = _with(tuple(
        TransitionSpec(t.trigger, t.source, t.dest) for t in COMMAND_TRANSITIONS))
    for render in (mermaid_source, dot_source):
        original = render(drawing_of(base))
        assert render(drawing_of(added)) != original
        assert "abandon" in render(drawing_of(added))
        assert render(drawing_of(unguarded)) != original
        assert "ends_successfully" not in render(drawing_of(unguarded))


def test_seed_flow_is_read_from_the_example_commands() -> None:
    drawing = seed_flow_drawing()
    edges = {(e.source, e.dest) for e in drawing.edges}
    assert {
        ("AddVmFromTemplate", "CreateCloneOfTemplate"),
        ("CreateCloneOfTemplate", "copy_image"),
        ("CreateCloneOfTemplate", "RemoveImage"),
        ("RemoveImage", "delete_image"),
        ("RemoveImage", "ended_failure"),
    } <= edges
    # The override, as the command machine decides it: an opposite command never succeeds.
    assert ("RemoveImage", CommandStatus.ENDED_SUCCESS) not in edges
    assert ("CreateCloneOfTemplate", CommandStatus.ENDED_SUCCESS) in edges
    mermaid = mermaid_source(drawing)
    assert "RemoveImage<br/>ROLLBACK_FLOW" in mermaid


def test_seed_flow_follows_the_code_not_a_drawing() -> None:
    class NativeClone(CreateCloneOfTemplate):
        def revert(self, ctx: object, resource: object) -> None:  # type: ignore[override]
            return None  # as if the storage host could revert a copy itself

    registry = CommandRegistry([c for c in VM_COMMANDS if c is not CreateCloneOfTemplate]
                               + [NativeClone])
    edges = {(e.source, e.dest) for e in seed_flow_drawing(registry).edges}
    assert ("CreateCloneOfTemplate", "RemoveImage") not in edges
    assert "RemoveImage" not in {e.source for e in seed_flow_drawing(registry).edges}


def _regenerate(out: Path) -> list[str]:
    formats = DEFAULT_FORMATS if HAVE_DOT else tuple(f for f in DEFAULT_FORMATS if f != "svg")
    write_drawings([*machine_drawings(), seed_flow_drawing()], out, formats)
    return list(formats)


def test_committed_diagrams_match_the_code(tmp_path: Path) -> None:
    """CI fails here when a transition changed and `endaction diagrams` was not run."""
    formats = _regenerate(tmp_path)
    committed = {p.name for p in COMMITTED.iterdir() if p.suffix[1:] in formats}
    generated = {p.name for p in tmp_path.iterdir()}
    assert committed == generated, "diagrams/ has stale or missing files: run endaction diagrams"
    stale = [name for name in sorted(generated)
             if (tmp_path / name).read_bytes() != (COMMITTED / name).read_bytes()]
    assert stale == [], f"out of date: {stale}; run `endaction diagrams` and commit diagrams/"
    if not HAVE_DOT:
        pytest.skip("Graphviz `dot` is not installed: SVGs were not compared")


def test_regenerating_is_byte_identical(tmp_path: Path) -> None:
    _regenerate(tmp_path / "a")
    _regenerate(tmp_path / "b")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_the_machines_page_embeds_the_generated_mermaid() -> None:
    """The machines page carries the Mermaid sources, which GitHub renders inline.

    The page is docs/reference/machines.md; the README shows the command machine's SVG.
    """
    blocks = mermaid_blocks((ROOT / "docs" / "reference" / "machines.md").read_text())
    files = [(COMMITTED / f"{d.name}.mmd").read_text()
             for d in [*machine_drawings(), seed_flow_drawing()]]
    assert blocks == files
    assert "](diagrams/command.svg)" in (ROOT / "README.md").read_text()


def test_missing_graphviz_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagram_files.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        write_drawings(machine_drawings(), tmp_path / "out", ("mmd", "svg"))
    assert not (tmp_path / "out").exists(), "nothing is written when it cannot all be written"
    write_drawings(machine_drawings(), tmp_path / "text", ("mmd", "dot"))
    assert (tmp_path / "text" / "command.dot").exists()


def test_cli_without_dot_on_path(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    command = [sys.executable, "-m", "statemachines.cli", "diagrams", "--out", str(tmp_path / "d")]
    failed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert failed.returncode == 1
    assert "Graphviz" in failed.stderr and "apt-get install graphviz" in failed.stderr
    assert "Traceback" not in failed.stderr
    worked = subprocess.run([*command, "--format", "mmd,dot"], capture_output=True, text=True,
                            env=env, check=False)
    assert worked.returncode == 0, worked.stderr
    expected = mermaid_source(drawing_of(COMMAND_MACHINE))
    assert (tmp_path / "d" / "command.mmd").read_text() == expected


def test_cli_refuses_an_unknown_format(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "statemachines.cli", "diagrams", "--out",
                           str(tmp_path), "--format", "mmd,gif"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "gif" in done.stderr


def test_readme_blocks_are_rewritten_in_order() -> None:
    text = "a\n```mermaid\nold 1\n```\nb\n```mermaid\nold 2\n```\n"
    assert embed_mermaid(text, ["new 1\n", "new 2\n"]) == (
        "a\n```mermaid\nnew 1\n```\nb\n```mermaid\nnew 2\n```\n")
    assert mermaid_blocks(embed_mermaid(text, ["x\n", "y\n"])) == ["x\n", "y\n"]
    with pytest.raises(ReadmeMismatch, match="1 ```mermaid block"):
        embed_mermaid("```mermaid\nonly\n```", ["x\n", "y\n"])


def test_without_the_graphviz_package_dot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transitions would silently draw Mermaid instead; a .dot file must never hold that."""
    from transitions.extensions import diagrams_graphviz

    from statemachines.core.errors import EndactionError

    monkeypatch.setattr(diagrams_graphviz, "pgv", None)
    with pytest.raises(EndactionError, match="pip install graphviz"):
        dot_source(drawing_of(COMMAND_MACHINE))
    assert mermaid_source(drawing_of(COMMAND_MACHINE)).startswith("---\ntitle:")
