"""No module of the library passes 400 lines.

One that grows past it is split by what it holds, in the change that grows it (how we keep the house
walkable).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for folder in ("statemachines", "persistence")
             for path in (ROOT / folder).rglob("*.py")}
    assert len(sizes) > 100  # not vacuous: the library's modules were all read
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_no_banner_marks_a_split_not_made() -> None:
    """A `# ----` banner says a module holds two things: the split is made instead."""
    banners = [f"{path.relative_to(ROOT)}:{number}"
               for folder in ("statemachines", "persistence")
               for path in sorted((ROOT / folder).rglob("*.py"))
               for number, line in enumerate(path.read_text().splitlines(), start=1)
               if line.strip().startswith("# ---")]
    assert banners == []
