"""State diagrams drawn from the machine definitions the engine runs (see `drawing`)."""

from .drawing import Drawing, Edge, drawing_of
from .files import (
    DEFAULT_FORMATS,
    FORMATS,
    GraphvizMissing,
    machine_drawings,
    parse_formats,
    render,
    require_graphviz,
    write_drawings,
)
from .render import Highlight, dot_source, mermaid_source

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "Drawing",
    "Edge",
    "GraphvizMissing",
    "Highlight",
    "dot_source",
    "drawing_of",
    "machine_drawings",
    "mermaid_source",
    "parse_formats",
    "render",
    "require_graphviz",
    "write_drawings",
]
