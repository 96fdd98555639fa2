"""What a diagram shows, read from the live `transitions` Machine a SharedMachine runs on.

The engine fires transitions from `SharedMachine.machine`'s own event table, so reading that
same table here (and not the TransitionSpec list, nor a copy of it) is what guarantees that
a diagram cannot show a transition the engine would not take, or miss one it would.

transitions tries the transitions of one event from one source in order and takes the first
whose guards hold. A diagram shows each edge on its own, so the order is made explicit: a
later transition carries the negation of the guards before it (`end [!ends_successfully]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.machines.shared_machine import SharedMachine


@dataclass(frozen=True)
class Edge:
    """One arrow of a diagram: `trigger` from `source` to `dest`, with its guards.

    `conditions` must hold and `unless` must not; `unless` also carries the guards of the
    transitions tried before this one, so each edge shows when it is the one taken.
    """

    trigger: str
    source: str
    dest: str
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    label: str | None = None  # shown instead of the trigger; guards are still appended


@dataclass(frozen=True)
class Drawing:
    """A machine as a diagram: states in definition order, edges in firing order."""

    name: str
    title: str
    states: tuple[str, ...]
    initial: str
    edges: tuple[Edge, ...]
    final: frozenset[str] = frozenset()
    state_labels: dict[str, str] = field(default_factory=dict)
    # Guard name -> what it means: drawn as a note beside the state the guard is tried in.
    notes: dict[str, tuple[str, str]] = field(default_factory=dict)


def drawing_of(shared: SharedMachine, name: str | None = None,
               title: str | None = None) -> Drawing:
    """The diagram of a shared machine, from the Machine the engine fires."""
    edges: list[Edge] = []
    notes: dict[str, tuple[str, str]] = {}
    for trigger, event in shared.machine.events.items():
        for source, transitions in event.transitions.items():
            earlier: list[str] = []
            for transition in transitions:
                conditions = [_name(c.func) for c in transition.conditions if c.target]
                unless = [_name(c.func) for c in transition.conditions if not c.target]
                edges.append(Edge(trigger, str(source), str(transition.dest),
                                  tuple(conditions), tuple([*unless, *earlier])))
                earlier.append(_as_one_guard(conditions, unless))
                for condition in transition.conditions:
                    notes[_name(condition.func)] = (str(source), _meaning(condition.func))
    return Drawing(
        name=name or shared.kind,
        title=title or f"{shared.kind} machine",
        states=shared.states,
        initial=shared.initial,
        edges=tuple(edges),
        final=frozenset(shared.terminal),
        notes=notes,
    )


def _as_one_guard(conditions: list[str], unless: list[str]) -> str:
    """The guards of one transition as the single name its negation is shown with."""
    parts = [*conditions, *(f"!{u}" for u in unless)]
    if len(parts) == 1 and not unless:
        return parts[0]
    return f"({' & '.join(parts)})" if parts else "(always)"


def _name(func: object) -> str:
    """A guard as transitions names it: a callable's name, or the model method it names."""
    return str(getattr(func, "__name__", func))


def _meaning(func: object) -> str:
    """A guard's docstring, first line: the rule in words, kept next to the code of the rule."""
    doc = (getattr(func, "__doc__", None) or "").strip().splitlines() if callable(func) else []
    name = _name(func)
    return f"{name}: {doc[0].strip()}" if doc else name
