"""Mermaid and Graphviz sources of a Drawing, through transitions' own GraphMachine.

transitions draws the states and edges (with `show_conditions`, so guards appear as
`end [ends_successfully]`); this module adds what it does not draw: terminal states, a note
per guard saying what it means, and, for a trace, the states one command visited.
Nothing here reads a clock or a version, so the same definitions give byte-identical files.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transitions import State
from transitions.extensions import GraphMachine

from ..core.errors import EndactionError, require_extra
from .drawing import Drawing

Engine = Literal["mermaid", "graphviz"]
MERMAID: Engine = "mermaid"
GRAPHVIZ: Engine = "graphviz"
NOTE_WIDTH = 44


@dataclass(frozen=True)
class Highlight:
    """One object's path over a drawing: visited states (with what to write on them)."""

    visited: Mapping[str, Sequence[str]]  # state -> lines such as "2. 17:32:01.123"
    edges: Sequence[tuple[str, str]] = ()
    current: str | None = None


class _LabelledState(State):
    """transitions draws a state's `label` but its State does not take one; this one does."""

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if label is not None:
            self.label = label


class _DrawingMachine(GraphMachine):
    state_cls = _LabelledState


class _Canvas:
    """The model GraphMachine needs to bind get_graph to; it is never moved."""

    get_graph: Any


def mermaid_source(drawing: Drawing, highlight: Highlight | None = None) -> str:
    """The Mermaid source of a drawing, with its terminal states and a note per guard.

    With `highlight`, the path one object took is styled over it. The source uses `class`,
    not `Class`, and a title under its YAML key, so that every renderer takes it.
    """
    graph = _graph(drawing, MERMAID, highlight)
    # Mermaid's keyword is `class`; transitions writes `Class`, which not every renderer takes.
    lines = [line.replace("  Class ", "  class ", 1) for line in str(graph.source).split("\n")]
    if lines[0] == lines[2] == "---":  # front matter is YAML: the title needs its key
        lines[1] = f"title: {json.dumps(drawing.title)}"
    extra = [f"  {state} --> [*]" for state in drawing.states if state in drawing.final]
    for state, text in drawing.notes.values():
        # Some Mermaid grammars end a statement at ';'; a comma reads the same in a note.
        extra.append(f"  note right of {state}")
        extra += [f"    {line}" for line in _wrap(text.replace(";", ","))]
        extra.append("  end note")
    return "\n".join(line.rstrip() for line in [*lines, *extra]) + "\n"


def dot_source(drawing: Drawing, highlight: Highlight | None = None) -> str:
    """The Graphviz DOT source of a drawing, with terminal states drawn with a double ring.

    Each guard's note is linked by a dashed line to the state it is tried in; with
    `highlight`, the path one object took is styled over it.
    """
    # Without the graphviz package, transitions would quietly draw Mermaid instead.
    require_extra("svg", "a DOT, SVG or PNG diagram")
    graph = _graph(drawing, GRAPHVIZ, highlight)
    for state in drawing.states:
        if state in drawing.final:
            graph.node(state, peripheries="2")
    for guard, (state, text) in drawing.notes.items():
        note = f"note_{guard}"
        graph.node(note, label="\\l".join(_wrap(text)) + "\\l", shape="note",
                   style="filled", fillcolor="lightyellow", fontsize="10")
        graph.edge(note, state, style="dashed", arrowhead="none", color="gray50")
    source: str = graph.source
    return source


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, NOTE_WIDTH) or [text]


def _transitions(drawing: Drawing) -> list[dict[str, Any]]:
    """The drawing's edges as transitions' own transition definitions."""
    transitions = []
    for edge in drawing.edges:
        entry: dict[str, Any] = {"trigger": edge.trigger, "source": edge.source,
                                 "dest": edge.dest}
        if edge.conditions:
            entry["conditions"] = list(edge.conditions)
        if edge.unless:
            entry["unless"] = list(edge.unless)
        if edge.label is not None:
            entry["label"] = edge.label
        transitions.append(entry)
    return transitions


def _graph(drawing: Drawing, engine: Engine, highlight: Highlight | None) -> Any:
    canvas = _Canvas()
    newline = "<br/>" if engine == MERMAID else "\\n"
    states = []
    for state in drawing.states:
        label = drawing.state_labels.get(state, state).split("\n")
        if highlight is not None:
            label += list(highlight.visited.get(state, ()))
        states.append({"name": state, "label": newline.join(label)})
    transitions = _transitions(drawing)
    machine = _DrawingMachine(
        model=canvas, states=states, initial=drawing.initial, transitions=transitions,
        auto_transitions=False, show_conditions=True, title=drawing.title,
        graph_engine=engine,
    )
    styles = machine.model_graphs[id(canvas)]
    styles.reset_styling()  # GraphMachine marks the model's state (the initial) as active
    if highlight is not None:
        for state in highlight.visited:
            styles.set_node_style(state, "previous")
        for source, dest in highlight.edges:
            styles.set_previous_transition(source, dest)
        if highlight.current is not None:
            styles.set_node_style(highlight.current, "active")
    graph = canvas.get_graph(title=drawing.title)
    if engine == GRAPHVIZ and not hasattr(graph, "node"):
        # transitions falls back to Mermaid, with only a log line, when it cannot import graphviz.
        raise EndactionError("DOT, SVG and PNG need the `graphviz` Python package, a dependency "
                             "of endaction: pip install graphviz")
    return graph
