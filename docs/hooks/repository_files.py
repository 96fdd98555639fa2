"""MkDocs hook: pages link to files of the repository outside docs/ as GitHub shows them.

A page links to `../../diagrams/command.svg` or `../../BENCHMARKS.md`, which GitHub resolves in
the repository. MkDocs only knows `docs/`, so this hook adds the repository files the pages
link to into the site under `repository/` (a Markdown file becomes a page) and points the links
there; a link to a folder becomes its text. A link to a path that does not exist is left
alone, and MkDocs's strict mode reports it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s#]+)(#[^)\s]*)?\)")
_FENCE = re.compile(r"```.*?```", re.S)
# Where each page's text really lives, for pages added from outside docs/.
_SOURCE: dict[str, Path] = {}


def _outside_docs(page_dir: Path, target: str) -> Path | None:
    """The repository path a relative link names, when it lies outside docs/."""
    if re.match(r"^[a-z]+:", target) or target.startswith("/"):
        return None
    path = (page_dir / target).resolve()
    if path.is_relative_to(DOCS) or not path.is_relative_to(ROOT) or not path.exists():
        return None
    return path


def _linked_from(page: Path) -> set[Path]:
    text = _FENCE.sub("", page.read_text())
    found = {_outside_docs(page.parent, m.group(2)) for m in _LINK.finditer(text)}
    return {p for p in found if p is not None and p.is_file()}


def on_files(files: Files, config: Any) -> Files:
    """Every repository file a page links to, added to the site (and what those link to)."""
    todo = [p for p in DOCS.rglob("*.md") if not p.is_relative_to(DOCS / "hooks")]
    seen: set[Path] = set()
    while todo:
        for path in _linked_from(todo.pop()) - seen:
            seen.add(path)
            uri = f"repository/{path.relative_to(ROOT).as_posix()}"
            _SOURCE[uri] = path
            files.append(File.generated(config, uri, abs_src_path=str(path)))
            if path.suffix == ".md":
                todo.append(path)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Links to repository files point at their copies; links to folders become text."""
    uri = page.file.src_uri
    page_dir = _SOURCE.get(uri, DOCS / uri).parent
    up = "../" * (len(Path(uri).parts) - 1)

    def point(match: re.Match[str]) -> str:
        target = (page_dir / match.group(2)).resolve()
        if uri in _SOURCE and target.is_relative_to(DOCS) and target.exists():
            # a repository page's link into docs/: the page as the site has it
            return f"[{match.group(1)}]({up}{target.relative_to(DOCS).as_posix()}" \
                   f"{match.group(3) or ''})"
        path = _outside_docs(page_dir, match.group(2))
        if path is None:
            return match.group(0)
        if path.is_dir():
            return match.group(1)
        copy = f"{up}repository/{path.relative_to(ROOT).as_posix()}"
        return f"[{match.group(1)}]({copy}{match.group(3) or ''})"

    parts = _FENCE.split(markdown)
    out = [_LINK.sub(point, parts[0])]
    for fence, part in zip(_FENCE.findall(markdown), parts[1:], strict=True):
        out += [fence, _LINK.sub(point, part)]
    return "".join(out)
