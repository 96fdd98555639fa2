"""`endaction db upgrade`: create or upgrade the schema, in one transaction, work in flight kept."""

from __future__ import annotations

import click

from persistence import connect
from persistence.schema_version import SchemaState, refusal, upgrade

from ..core.engine.application import App
from ..toolkit.app_option import app_option
from ..toolkit.database import database_url, db_option, open_database


@click.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@app_option
@db_option
def upgrade_command(app: App, db: str | None) -> None:
    """Create or upgrade the schema, then the application's missing ledger tables.

    Creates the schema in an empty database, or brings an older one to this version; then
    creates the application's ledger tables that are missing.
    """
    engine = connect(database_url(db), make_folder=True)
    url = engine.url.render_as_string(hide_password=True)  # never print a password
    try:
        before, after = upgrade(engine, url)
    finally:
        engine.dispose()
    problem = refusal(after, url)
    if problem is not None:
        raise problem
    open_database(db, create=True, app=app).dispose()
    if before.state == SchemaState.EMPTY:
        click.echo(f"created endaction schema {after.revision} in {url}")
    elif before.revision != after.revision:
        click.echo(f"upgraded {url} from endaction schema {before.revision} to {after.revision}")
    else:
        click.echo(f"{url} already has endaction schema {after.revision}")
