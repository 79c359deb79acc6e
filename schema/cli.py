"""``python -m schema``: apply the migrations, or tell the revision a database is at."""

from __future__ import annotations

import os

import typer

from device_profiles.logs import configure
from schema.migrate import current_revision, migrate

app = typer.Typer(add_completion=False, help="egenmon database schema (Alembic migrations).", no_args_is_help=True)


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL") or os.environ.get("EGENMON_INGEST_DATABASE_URL")
    if not url:
        typer.echo("DATABASE_URL is not set", err=True)
        raise typer.Exit(2)
    return url


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Alembic revision to upgrade to")) -> None:
    """Apply the migrations (DATABASE_URL) up to REVISION, the newest by default."""
    configure(os.environ.get("EGENMON_LOG_LEVEL", "INFO"))
    mode = migrate(_database_url(), revision)
    typer.echo(f"schema up to date (storage: {mode})")


@app.command()
def current() -> None:
    """Print the revision the database (DATABASE_URL) is at, or "none"."""
    typer.echo(current_revision(_database_url()) or "none")
