"""Keep the README's ```mermaid blocks equal to the generated .mmd files.

GitHub and most Markdown viewers render Mermaid inline but will not include a file, so the
README carries copies; rewriting them with the diagrams keeps the copies from going stale.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..core.errors import EndactionError

_BLOCK = re.compile(r"```mermaid\n.*?```", flags=re.S)


class ReadmeMismatch(EndactionError, ValueError):
    """The README does not have one ```mermaid block per diagram."""


def embed_mermaid(readme: str, sources: Sequence[str]) -> str:
    """The README with its n-th mermaid block replaced by the n-th source."""
    found = len(_BLOCK.findall(readme))
    if found != len(sources):
        raise ReadmeMismatch(f"the README has {found} ```mermaid block(s), there are "
                             f"{len(sources)} diagrams: add or remove blocks to match")
    replacements = iter(sources)
    return _BLOCK.sub(lambda _: f"```mermaid\n{next(replacements)}```", readme)


def mermaid_blocks(readme: str) -> list[str]:
    """The sources of a Markdown page's mermaid blocks, in order, fences left out."""
    return [block[len("```mermaid\n"):-3] for block in _BLOCK.findall(readme)]
