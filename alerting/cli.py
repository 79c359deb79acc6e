"""Command line: ``python -m alerting run | evaluate --patient X | explain ALERT_ID | rules``."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any

import psycopg
import typer

from alerting.engine import evaluate
from alerting.load import load_cohort, load_dataset
from alerting.replay import ReplayError, replay
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


def parse_settings(items: list[str]) -> dict[str, dict[str, float]]:
    """``RULE.parameter=value`` items → a thresholds proposal."""
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        rule_id, dot, name = key.partition(".")
        if not sep or not dot or rule_id not in REGISTRY:
            raise typer.BadParameter(f"{item!r}: expected RULE.parameter=value with a known rule id")
        if name not in REGISTRY[rule_id].params:
            raise typer.BadParameter(f"{item!r}: {rule_id} has no parameter {name!r}")
        try:
            number = float(value.replace(",", "."))
        except ValueError as err:
            raise typer.BadParameter(f"{item!r}: {value!r} is not a number") from err
        if not math.isfinite(number):
            raise typer.BadParameter(f"{item!r}: the value must be finite")
        out.setdefault(rule_id, {})[name] = number
    return out


@app.command("replay")
def replay_cmd(  # noqa: PLR0917 (typer options)
    unit: Annotated[str, typer.Option(help="care unit code or uuid")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="proposed threshold, RULE.parameter=value (repeatable)")
    ] = None,
    days: Annotated[int, typer.Option(help="how far back to replay (1–90)")] = 30,
    condition: Annotated[str | None, typer.Option(help="only the unit's patients with this condition")] = None,
    step_hours: Annotated[float, typer.Option(help="evaluation step")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Re-run the engine over the unit's last N days with proposed thresholds; nothing is stored."""
    settings = AlertingSettings()
    _configure_logging("WARNING")
    proposal = parse_settings(set_ or [])
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT id::text FROM care_unit WHERE code = %s OR id::text = %s", (unit, unit)).fetchone()
        if row is None:
            raise typer.BadParameter(f"no care unit with code or id {unit!r}")
        try:
            result = replay(conn, row[0], days=days, proposal=proposal, condition=condition, step_h=step_hours)
        except ReplayError as err:
            raise typer.BadParameter(str(err)) from err
    doc = result.as_dict()
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=1))
        return
    typer.echo(f"unit {unit}: {doc['patients']} patients, {doc['start']} .. {doc['end']} ({doc['patient_months']} pm)")
    typer.echo(f"proposal: {json.dumps(proposal) if proposal else '(none: the care plans in force)'}")
    typer.echo("event type | staff alerts now | with proposal | per patient-month now | with proposal")
    for r in doc["by_event_type"]:
        typer.echo(
            f"{r['event_type']} | {r['current']} | {r['proposed']} | "
            f"{r['current_per_patient_month']} | {r['proposed_per_patient_month']}"
        )
    typer.echo(f"past staff alerts: {doc['caught']} caught, {doc['missed']} missed by the proposal")
    for p in doc["past"]:
        if not p["caught"]:
            typer.echo(f"  missed: {p['pseudonym']} {p['event_type']} {p['severity']} opened {p['opened_at']}")


@app.command("rules")
def list_rules() -> None:
    """List the registered rules and those not implemented."""
    for r in REGISTRY.values():
        typer.echo(f"{r.id:7} {','.join(r.conditions) or 'all':28} {r.title}  [{r.severities}]")
