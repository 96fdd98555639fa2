"""One `transitions` Machine per kind of object, driving any number of plain records.

`Machine.add_model` binds a trigger method per event onto every model, which costs about
160 microseconds per object; at 10,000 disks that alone would eat the time budget. Records
are never added to the Machine. `fire` reads the Machine's own event table (source -> the
ordered transitions of an event, each with its conditions) and applies the first transition
whose conditions hold, which is what `Event.trigger` does for machines without callbacks,
minus building an EventData per call (15 microseconds, 200,000 times for a 10,000-disk
rollback). `fire_strict` goes through `Event.trigger` itself; a test holds the two equal for
every state, trigger and guard outcome. The transition table therefore lives only in the
Machine built here, the same definition the diagrams are drawn from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from transitions import Machine, MachineError

from ..errors import EndactionError


@dataclass(frozen=True)
class TransitionSpec:
    """One transition of a machine: `trigger` moves a record from `source` to `dest`.

    `source` may name several states. The transition applies only when all its `conditions`
    hold for the record; of an event's transitions from one state, the first that applies
    wins, so an unconditional one listed last is the fallback.
    """

    trigger: str
    source: str | Sequence[str]
    dest: str
    conditions: tuple[Callable[[Any], bool], ...] = ()

    def sources(self) -> list[str]:
        """The source states as a list of plain strings, as `transitions` takes them."""
        # Plain strings: transitions names Enum states by member name, not by value.
        sources = [self.source] if isinstance(self.source, str) else self.source
        return [str(s) for s in sources]


class IllegalTransition(EndactionError):
    """A trigger fired where the machine has no transition for it.

    That is an engine bug, held on the root it happened on.
    """

    def __init__(self, kind: str, object_id: str, trigger: str, state: str) -> None:
        super().__init__(f"{kind} {object_id}: trigger {trigger!r} is not allowed from {state!r}")


class SharedMachine:
    """A transition table with named states; fire() moves one record along it."""

    def __init__(
        self,
        kind: str,
        states: type[StrEnum],
        initial: str,
        transitions: Sequence[TransitionSpec],
        terminal: Sequence[str],
    ) -> None:
        """`states` is the machine's StrEnum: records it moves carry its members."""
        self.kind = kind
        self.state_type = states
        self.states = tuple(s.value for s in states)
        self.initial = str(initial)
        self.transitions = tuple(transitions)
        self.terminal = frozenset(terminal)
        self.machine = Machine(
            model=None,
            states=list(self.states),
            initial=self.initial,
            transitions=[self._as_dict(t) for t in transitions],
            auto_transitions=False,
            send_event=True,
            model_attribute="status",
        )
        self._table = self._compile()

    @staticmethod
    def _as_dict(spec: TransitionSpec) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "trigger": str(spec.trigger), "source": spec.sources(), "dest": str(spec.dest)
        }
        if spec.conditions:
            entry["conditions"] = [_on_model(c) for c in spec.conditions]
        return entry

    def _compile(self) -> dict[tuple[str, str], tuple[tuple[str, tuple[Any, ...]], ...]]:
        table: dict[tuple[str, str], tuple[tuple[str, tuple[Any, ...]], ...]] = {}
        for trigger, event in self.machine.events.items():
            for source, transitions in event.transitions.items():
                table[(trigger, source)] = tuple(
                    (self.state_type(str(t.dest)),
                     tuple((c.func, c.target) for c in t.conditions))
                    for t in transitions
                )
        return table

    def fire(self, model: Any, trigger: str) -> str:
        """Apply `trigger` to `model`; return the source state. Raises when not allowed."""
        source: str = model.status
        for dest, conditions in self._table.get((trigger, source), ()):
            if not conditions or all(bool(func(_Event(model))) == target
                                     for func, target in conditions):
                model.status = dest
                return source
        raise IllegalTransition(self.kind, model.id, trigger, source)

    def fire_strict(self, model: Any, trigger: str) -> str:
        """The same as fire(), through transitions' own Event.trigger."""
        source: str = model.status
        try:
            moved = self.machine.events[trigger].trigger(model)
        except (MachineError, KeyError) as err:
            raise IllegalTransition(self.kind, model.id, trigger, source) from err
        if not moved:
            raise IllegalTransition(self.kind, model.id, trigger, source)
        return source

    def is_terminal(self, state: str) -> bool:
        """Whether `state` is one of the terminal states this machine was built with."""
        return state in self.terminal


class _Event:
    """The one part of transitions' EventData our guards read."""

    __slots__ = ("model",)

    def __init__(self, model: Any) -> None:
        self.model = model


def _on_model(condition: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Adapt a guard written against the record to transitions' EventData calling convention."""

    def guard(event: Any) -> bool:
        return condition(event.model)

    guard.__name__ = condition.__name__
    guard.__doc__ = condition.__doc__
    return guard
