"""`endaction diagrams`: the machines' pictures, drawn from the definitions the engine runs."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.engine.application import App
from ..diagrams import (
    DEFAULT_FORMATS,
    FORMATS,
    GraphvizMissing,
    machine_drawings,
    mermaid_source,
    parse_formats,
    write_drawings,
)
from ..diagrams.readme import ReadmeMismatch, embed_mermaid
from ..toolkit.app_option import app_option


def formats_option(text: str, allowed: tuple[str, ...] = FORMATS) -> tuple[str, ...]:
    """The formats a `--format` value names, among `allowed`.

    A value that names none, or an unknown one, is a click usage error on `--format`, so that
    the user sees the option to fix rather than a traceback.
    """
    try:
        return parse_formats(text, allowed)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--format") from err


@click.command()
@app_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("diagrams"), show_default=True, help="directory to write into")
@click.option("--format", "formats", default=",".join(DEFAULT_FORMATS), show_default=True,
              help=f"comma-separated, from {', '.join(FORMATS)} (svg and png need Graphviz)")
@click.option("--readme", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="also rewrite this Markdown file's ```mermaid blocks, in order")
def diagrams(app: App, out: Path, formats: str, readme: Path | None) -> None:
    """Draw the status machines and the application's own drawings.

    The status machines are the command, task and host ones; the application's own drawings
    are, for the VM example, the seed's flow.
    """
    chosen = formats_option(formats)
    drawings = [*machine_drawings(), *app.drawings()]
    try:
        written = write_drawings(drawings, out, chosen)
        if readme is not None:
            text = readme.read_text()
            updated = embed_mermaid(text, [mermaid_source(d) for d in drawings])
            if updated != text:
                readme.write_text(updated)
                written.append(readme)
    except (GraphvizMissing, ReadmeMismatch) as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(f"cannot write the drawings to {out}: "
                                   f"{err.strerror or err}") from err
    for path in written:
        click.echo(str(path))
