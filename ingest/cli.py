"""``egenmon-ingest``: apply the schema, run the ingest worker."""

from __future__ import annotations

import gc
import logging
import os
import sys

import psycopg
import typer

from device_profiles.logs import configure
from ingest.retention import prune_dead_letters
from ingest.service import IngestService
from ingest.settings import IngestSettings
from ingest.supervisor import SUPERVISOR_PID_ENV, Supervisor
from schema.migrate import migrate as migrate_schema

log = logging.getLogger(__name__)
app = typer.Typer(add_completion=False, help="egenmon ingest: MQTT readings into PostgreSQL.", no_args_is_help=True)


@app.command()
def migrate() -> None:
    """Apply the database migrations (DATABASE_URL) up to the newest revision."""
    settings = IngestSettings()
    configure(settings.log_level)
    mode = migrate_schema(settings.database_url)
    typer.echo(f"schema up to date (storage: {mode})")


@app.command()
def run() -> None:
    """Consume readings from MQTT_URL into DATABASE_URL until SIGTERM/SIGINT.

    With EGENMON_INGEST_PROCESSES=N > 1, start N worker processes and supervise them.
    """
    settings = IngestSettings()
    configure(settings.log_level)
    if settings.processes > 1:
        raise typer.Exit(Supervisor(settings).run_forever())
    # Parsing allocates many short-lived objects; with the default thresholds the cyclic
    # collector runs every few hundred readings and rescans the long-lived heap.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    # paho's network thread reads one packet per wake-up; with the parser busy it would
    # wait a whole GIL switch interval (5 ms by default) for each small message.
    sys.setswitchinterval(settings.gil_switch_interval_s)
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    raise typer.Exit(IngestService(settings).run_forever(supervisor_pid=int(supervisor) if supervisor else None))


@app.command("prune-dead-letters")
def prune(
    days: int | None = typer.Option(
        None, min=1, help="keep this many days (default: EGENMON_INGEST_DEAD_LETTER_RETENTION_DAYS)"
    ),
) -> None:
    """Delete dead letters older than the retention period, in batches (workers also do this hourly)."""
    settings = IngestSettings()
    configure(settings.log_level)
    keep = days if days is not None else settings.dead_letter_retention_days
    if keep <= 0:
        typer.echo("dead-letter retention is off (0 days): nothing deleted")
        return
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        deleted = prune_dead_letters(conn, keep)
    typer.echo(f"{deleted} dead letters older than {keep} days deleted")


@app.command()
def retire(
    client_id: str = typer.Argument(help="client id of the retired worker (e.g. egenmon-ingest-host1-2)"),
    idle_s: float = typer.Option(5.0, min=0.5, help="quiet seconds with everything stored before the session ends"),
    timeout_s: float = typer.Option(600.0, min=1.0, help="give up (session kept) after this long"),
) -> None:
    """Store what the broker still queues for a retired worker, then end its session.

    Stop that worker first. Exit status 0 when the session was drained and ended.
    """
    settings = IngestSettings(client_id=client_id, processes=1, metrics_port=0)
    configure(settings.log_level)
    service = IngestService(settings, retiring=True)
    ended = service.retire(idle_s=idle_s, timeout_s=timeout_s)
    found = "had a session" if service.session_present else "had no session"
    outcome = "session ended" if ended else "session kept (see the log)"
    typer.echo(f"{client_id} {found}: {service.readings_committed} readings stored; {outcome}")
    raise typer.Exit(0 if ended else 1)
