"""``python -m clinic_api``: run the server, seed demo data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import psycopg
import typer
import uvicorn
from pydantic import ValidationError

from clinic_api import bootstrap, broker_credentials, demo_seed
from clinic_api.app import create_app
from clinic_api.settings import Settings, get_settings
from device_profiles.logs import configure

app = typer.Typer(add_completion=False, help="egenmon clinic API and web pages")


def _settings() -> Settings:
    """The settings, or a one-line message per problem and exit code 2 (no traceback)."""
    try:
        return get_settings()
    except ValidationError as err:
        for e in err.errors():
            where = ".".join(str(x) for x in e.get("loc", ())) or "settings"
            typer.echo(f"configuration error ({where}): {e.get('msg', '')}", err=True)
        raise typer.Exit(2) from err


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the API and pages with uvicorn."""
    configure(logging.INFO)
    settings = _settings()
    if workers > 1:
        uvicorn.run(
            "clinic_api.cli:factory",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through our JSON handler too
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=host or settings.host,
            port=port or settings.port,
            log_level="warning",
            log_config=None,
        )


def factory() -> object:
    return create_app()


@app.command("seed-demo")
def seed_demo(
    with_patients: Annotated[bool, typer.Option(help="Also create demo patients with readings and alerts")] = True,
) -> None:
    """Create demo care units and staff (dev-issuer logins), optionally demo patients."""
    demo_seed.seed_demo(_settings().database_url, with_patients=with_patients)
    typer.echo("demo staff: " + ", ".join(s.display_name for s in demo_seed.STAFF))


@app.command("create-admin")
def create_admin(
    subject: Annotated[str, typer.Option(help="The IdP's identifier of the person (the sub or HSA-id claim)")],
    name: Annotated[str, typer.Option(help="Display name, e.g. 'Administratör Eva Exempel'")],
    unit: Annotated[str, typer.Option(help="Care unit code the admin belongs to, e.g. MON-NORD")],
    unit_name: Annotated[str | None, typer.Option(help="Create the unit with this name if it does not exist")] = None,
    force: Annotated[bool, typer.Option(help="Rename an existing staff row whose name differs")] = False,
) -> None:
    """Create or promote a staff member to admin (the first admin of a new installation)."""
    configure(logging.INFO)
    settings = _settings()
    try:
        with psycopg.connect(settings.database_url) as conn:
            result = bootstrap.create_admin(
                conn, subject=subject, name=name, unit_code=unit, unit_name=unit_name, force=force
            )
    except bootstrap.BootstrapError as err:
        typer.echo(f"create-admin refused: {err}", err=True)
        raise typer.Exit(1) from err
    except psycopg.Error as err:
        typer.echo(f"create-admin failed: {type(err).__name__}: {err}", err=True)
        raise typer.Exit(1) from err
    verb = "created" if result.created else "updated"
    typer.echo(f"{verb} staff {result.staff_id}: roles {', '.join(result.roles)}; unit {result.unit_code}")


@app.command("export-broker-credentials")
def export_broker_credentials(
    out: Annotated[Path, typer.Option("--out", help="Mosquitto password file to update")],
    database_url: Annotated[str, typer.Option(envvar="DATABASE_URL", help="The egenmon database")],
) -> None:
    """Write every enrolled gateway's broker account into Mosquitto's password file.

    Other accounts in the file (ingest, platform) are kept. Reload the broker afterwards
    (systemctl reload mosquitto, or docker compose kill -s HUP mosquitto).
    """
    try:
        result = broker_credentials.export(database_url, out)
    except (broker_credentials.ExportError, psycopg.Error, OSError) as err:
        typer.echo(f"export-broker-credentials failed: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(
        f"{out}: {result.gateways} gateway accounts, {result.kept} other accounts kept, "
        f"{result.removed} no longer enrolled removed; now reload the broker"
    )


if __name__ == "__main__":
    app()
