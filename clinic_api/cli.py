"""``python -m clinic_api``: run the server, seed demo data."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from clinic_api import demo_seed
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


if __name__ == "__main__":
    app()
