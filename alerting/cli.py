"""Command line: ``python -m alerting run | evaluate --patient X | explain ALERT_ID | rules``."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import psycopg
import typer

from alerting.engine import evaluate
from alerting.load import load_cohort, load_dataset
from alerting.rules import REGISTRY
from alerting.service import AlertingService, evaluate_and_store
from alerting.settings import AlertingSettings
from device_profiles.logs import configure

app = typer.Typer(help="egenmon alerting: the rules engine and alert lifecycle", no_args_is_help=True)


def _configure_logging(level: str) -> None:
    configure(level)


def _resolve_patient(conn: psycopg.Connection[Any], patient: str) -> str:
    row = conn.execute(
        "SELECT id::text FROM patient WHERE id::text = %s OR pseudonym = %s", (patient, patient)
    ).fetchone()
    if row is None:
        raise typer.BadParameter(f"no patient with id or pseudonym {patient!r}")
    return str(row[0])


@app.command()
def run() -> None:
    """Listen for new readings and sweep periodically until SIGTERM/SIGINT."""
    settings = AlertingSettings()
    _configure_logging(settings.log_level)
    service = AlertingService(settings)
    service.install_signal_handlers()
    service.run()


@app.command("evaluate")
def evaluate_cmd(
    patient: Annotated[str, typer.Option(help="patient uuid or pseudonym")],
    store: Annotated[bool, typer.Option(help="apply the alert lifecycle (default: only print findings)")] = False,
) -> None:
    """Evaluate every rule for one patient and print the findings with their evidence."""
    settings = AlertingSettings()
    _configure_logging(settings.log_level)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        pid = _resolve_patient(conn, patient)
        now = time.time()
        if store:
            evaluate_and_store(conn, [pid], now, trigger="cli")
        cohort = load_cohort(conn, [pid])
        findings = evaluate(load_dataset(conn, cohort, now), cohort, now)
    for f in findings:
        typer.echo(json.dumps(f.evidence, ensure_ascii=False))
    if not findings:
        typer.echo("no findings")


@app.command()
def explain(alert_id: int) -> None:
    """Print an alert, its evidence (readings, thresholds and their source) and its events."""
    settings = AlertingSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.rule_id, a.status, a.severity, a.title, a.opened_at, a.fire_count, a.latest_value, a.evidence, "
            "p.pseudonym FROM alert a JOIN patient p ON p.id = a.patient_id WHERE a.id = %s",
            (alert_id,),
        ).fetchone()
        if row is None:
            typer.echo(f"no alert {alert_id}", err=True)
            raise typer.Exit(1)
        events = conn.execute(
            "SELECT at, event, comment FROM alert_event WHERE alert_id = %s ORDER BY at, id", (alert_id,)
        ).fetchall()
    rule_id, status, severity, title, opened_at, fire_count, latest, evidence, pseudonym = row
    typer.echo(f"alert {alert_id}: {rule_id} {title}")
    typer.echo(f"patient {pseudonym}  status {status}  severity {severity}  opened {opened_at.isoformat()}")
    typer.echo(f"fired {fire_count}×  latest value {latest}")
    typer.echo(f"severity mapping: {evidence.get('severity_mapping', '')}")
    typer.echo("thresholds in force:")
    for name, th in evidence.get("thresholds", {}).items():
        typer.echo(f"  {name} = {th['value']} ({th['source']})")
    typer.echo("triggering readings:")
    for r in evidence.get("readings", []):
        typer.echo(f"  {r['at']}  {r['series']}  {r['value']}")
    typer.echo("events:")
    for at, event, text in events:
        typer.echo(f"  {at.isoformat()}  {event}" + (f"  {text}" if text else ""))


@app.command("rules")
def list_rules() -> None:
    """List the registered rules and those not implemented."""
    for r in REGISTRY.values():
        typer.echo(f"{r.id:7} {','.join(r.conditions) or 'all':28} {r.title}  [{r.severities}]")
