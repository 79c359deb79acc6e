"""The simulators' command line (`python -m simulators` / `egenmon-sim`).

cohort   generate a cohort and write its labelled episodes
seed     write a cohort's care units, patients, care plans and gateways into DATABASE_URL
fleet    publish the cohort's readings to MQTT_URL: backfill history, then optionally live
score    compare the alerts in DATABASE_URL with a labels file
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from device_profiles.vocabulary import Condition
from simulators.cohort import DEFAULT_MIX, Cohort, CohortConfig, generate_cohort, read_labels, write_labels
from simulators.errors import SimulatorError
from simulators.fleet import Fleet, Publisher
from simulators.physiology import Habits
from simulators.scoring import format_rows, load_alerts, score
from simulators.seed import seed_database
from simulators.settings import get_settings

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)
console = Console(stderr=True)
log = logging.getLogger(__name__)

Patients = Annotated[int | None, typer.Option(help="Number of patients (default EGENMON_SIM_PATIENTS)")]
Seed = Annotated[int | None, typer.Option(help="Cohort seed (default EGENMON_SIM_SEED)")]
Days = Annotated[int, typer.Option(help="Days of simulated history")]
Start = Annotated[
    datetime | None, typer.Option(help="Start of the history (UTC, ISO 8601); default: DAYS ago, on the hour")
]
LabelsOut = Annotated[Path | None, typer.Option(help="Write patients and labelled episodes to this JSON file")]
Mix = Annotated[str | None, typer.Option(help="Condition mix, e.g. 'heart_failure=2,copd=1' (default: regional mix)")]


def _parse_mix(mix: str | None) -> dict[Condition, float]:
    if not mix:
        return dict(DEFAULT_MIX)
    out: dict[Condition, float] = {}
    try:
        for part in mix.split(","):
            name, _, weight = part.partition("=")
            out[Condition(name.strip())] = float(weight or 1)
    except ValueError as err:
        raise typer.BadParameter(f"bad mix {mix!r}: {err}") from err
    return out


def _config(
    *, patients: int | None, seed: int | None, days: int, start: datetime | None, mix: str | None, history_days: int
) -> CohortConfig:
    s = get_settings()
    if start is None:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = now - timedelta(days=history_days)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return CohortConfig(
        n_patients=patients or s.patients,
        seed=s.seed if seed is None else seed,
        start=start,
        days=days,
        mix=_parse_mix(mix),
        habits=Habits(),
        gateway_prefix=s.gateway_prefix,
    )


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format='{"at":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )


def _summary(cohort: Cohort) -> Table:
    table = Table(
        title=f"cohort seed={cohort.config.seed} from {cohort.config.start:%Y-%m-%d} for {cohort.config.days} days"
    )
    table.add_column("condition")
    table.add_column("patients", justify="right")
    counts: dict[str, int] = {}
    for p in cohort.patients:
        counts[p.condition.value] = counts.get(p.condition.value, 0) + 1
    for name, n in sorted(counts.items()):
        table.add_row(name, str(n))
    return table


@app.command()
def cohort(
    *,
    patients: Patients = None,
    seed: Seed = None,
    days: Days = 30,
    start: Start = None,
    mix: Mix = None,
    labels: Annotated[Path, typer.Option(help="Where to write the labels (JSON)")] = Path("labels.json"),
) -> None:
    """Generate a cohort and write its patients and labelled episodes."""
    c = generate_cohort(_config(patients=patients, seed=seed, days=days, start=start, mix=mix, history_days=days))
    n = write_labels(c, labels)
    console.print(_summary(c))
    typer.echo(f"wrote {n} labelled episodes for {len(c.patients)} patients to {labels}")


@app.command()
def seed(
    *,
    patients: Patients = None,
    seed: Seed = None,
    days: Days = 30,
    start: Start = None,
    mix: Mix = None,
    labels: LabelsOut = None,
) -> None:
    """Seed DATABASE_URL with the cohort (care units, patients, care plans, gateways); no staff."""
    _setup_logging()
    url = get_settings().database_url
    if not url:
        raise typer.BadParameter("set DATABASE_URL")
    c = generate_cohort(_config(patients=patients, seed=seed, days=days, start=start, mix=mix, history_days=days))
    result = seed_database(url, c)
    if labels:
        write_labels(c, labels)
    typer.echo(f"seeded {result.patients} patients, {result.gateways} gateways, {result.devices} devices")


@app.command()
def fleet(
    *,
    patients: Patients = None,
    seed: Seed = None,
    backfill_days: Annotated[int, typer.Option(help="Days of history to publish first")] = 30,
    live: Annotated[bool, typer.Option(help="After the backfill, keep publishing as time passes")] = False,
    live_days: Annotated[int, typer.Option(help="How many days ahead the live phase can run")] = 7,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall-clock second in the live phase")] = 1.0,
    live_seconds: Annotated[float | None, typer.Option(help="Stop the live phase after this many seconds")] = None,
    rate: Annotated[float, typer.Option(help="Messages per second (0: as fast as the broker acknowledges)")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Readings per message in the backfill")] = 288,
    start: Start = None,
    mix: Mix = None,
    seed_db: Annotated[bool, typer.Option(help="Seed DATABASE_URL with the cohort first")] = False,
    labels: LabelsOut = None,
) -> None:
    """Publish the cohort's readings to MQTT_URL as its gateways would."""
    _setup_logging()
    s = get_settings()
    cfg = _config(
        patients=patients,
        seed=seed,
        days=backfill_days + (live_days if live else 0),
        start=start,
        mix=mix,
        history_days=backfill_days,
    )
    c = generate_cohort(cfg)
    if seed_db:
        if not s.database_url:
            raise typer.BadParameter("--seed-db needs DATABASE_URL")
        seed_database(s.database_url, c)
    if labels:
        write_labels(c, labels)
    publisher = Publisher(s.mqtt_url)
    try:
        publisher.connect()
    except SimulatorError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        f = Fleet(c, publisher, batch_size=batch_size, rate=rate)
        now = cfg.start + timedelta(days=backfill_days)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[readings]} readings"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("backfill gateways", total=len(c.patients), readings=0)
            stats = f.backfill(now, progress=lambda g, r: progress.update(task, completed=g, readings=r))
        typer.echo(
            f"backfill: {stats.gateways} gateways, {stats.messages} messages, {stats.readings} readings "
            f"in {stats.seconds:.1f} s ({stats.readings_per_s:.0f} readings/s)"
        )
        if live:
            console.print(f"live: simulated time x{speed:g} from {now:%Y-%m-%d %H:%M} UTC; Ctrl-C to stop")
            try:
                stats = f.live(now, speed=speed, stop=stop, max_seconds=live_seconds)
            except KeyboardInterrupt:
                stop.set()
            typer.echo(f"live: {f.stats.readings} readings published in total")
    finally:
        publisher.close()


@app.command("score")
def score_cmd(
    labels: Annotated[Path, typer.Option(help="Labels file written by cohort/seed/fleet")] = Path("labels.json"),
    until: Annotated[datetime | None, typer.Option(help="Count episodes that ended by then (default: now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    ignore_rule: Annotated[
        list[str] | None, typer.Option(help="Leave out this rule's alerts, e.g. an adherence rule (repeatable)")
    ] = None,
) -> None:
    """Score the alerts in DATABASE_URL against labelled episodes, per condition and rule."""
    url = get_settings().database_url
    if not url:
        raise typer.BadParameter("set DATABASE_URL")
    try:
        lab = read_labels(labels)
    except SimulatorError as err:
        raise typer.BadParameter(str(err)) from err
    until = until or datetime.now(UTC)
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    episodes = [e for e in lab.episodes if e.end <= until]
    observed_days = max(0.0, min(lab.days, (until - lab.start).total_seconds() / 86_400))
    alerts = [a for a in load_alerts(url, lab.conditions) if a.opened_at <= until]
    rows = score(alerts, episodes, lab.conditions, observed_days, ignore_rules=frozenset(ignore_rule or ()))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "condition": r.condition.value,
                        "episode_type": r.episode_type,
                        "rule": r.rule_id,
                        "episodes": r.episodes,
                        "detected": r.detected,
                        "sensitivity": r.sensitivity,
                        "median_lead_h": r.median_lead_h,
                        "false_per_patient_month": r.false_per_patient_month,
                        "reviewed_per_patient_month": r.reviewed_per_patient_month,
                    }
                    for r in rows
                ],
                indent=1,
            )
        )
        return
    cells = format_rows(rows)
    table = Table(title=f"{len(episodes)} episodes, {len(alerts)} alerts, {observed_days:.0f} days")
    for h in cells[0]:
        table.add_column(h, justify="left" if h in {"condition", "episode", "rule"} else "right")
    for row in cells[1:]:
        table.add_row(*row)
    out = Console()
    if not out.is_terminal:
        # Redirected to a file or a pipe: keep every column on one line.
        out = Console(width=160)
    out.print(table)
