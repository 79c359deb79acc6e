"""The README's run command: the whole platform on one machine.

Starts the local stack (a throwaway PostgreSQL cluster and Mosquitto under ``.state/``)
unless DATABASE_URL / MQTT_URL point at external services, applies the migrations, seeds
a demo region (the clinic's care units and demo logins, ~50 simulated patients across
every condition), starts ingest (two worker processes), alerting and the clinic API,
backfills 30 days of history through MQTT, then keeps simulated gateways
publishing live until Ctrl-C, and stops everything it started.

Most patients' gateways are the fleet generator (``simulators.fleet``: the wire format,
published directly). A few patients (``--ble-gateways``, one per device-rich condition
first) instead run the real gateway code, ``python -m gateway run`` per patient, over the
virtual BLE devices of ``simulators.ble``: their devices take the patient's planned
measurements as wall-clock time passes (the last hour's are waiting on the devices at
start), and the gateway scans, connects, decodes the GATT bytes and publishes them. Their
history before that is backfilled by the fleet; they run in real time whatever ``--speed``
says.

``--smoke`` is the bounded variant CI runs: it starts everything, ingests readings from
simulated gateways (at least one through a real gateway process), waits for an alert that
matches a labelled episode, fetches the queue page, shuts down and exits 0 (every check
passed) or 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from clinic_api import demo_seed
from deploy.localstack import LocalMosquitto, LocalPostgres, free_port, wait_for_port
from device_profiles.vocabulary import Condition
from schema.migrate import migrate
from simulators.ble.scenario import SCENARIO_ENV
from simulators.cohort import (
    DEFAULT_MIX,
    Cohort,
    CohortConfig,
    PatientSpec,
    generate_cohort,
    shift_to_recent_episode,
    write_labels,
)
from simulators.fleet import Fleet, FleetStats, GatewayState, Publisher, gateway_readings
from simulators.physiology import Habits
from simulators.plan import BLE_DEVICE_TYPES, ble_scenario, measurement_plan
from simulators.scoring import AlertRecord, load_alerts, match_alerts
from simulators.seed import SeedResult, seed_database
from simulators.series import Episode

log = logging.getLogger("egenmon.demo")
app = typer.Typer(add_completion=False, help=__doc__)
console = Console()

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".state"
STATE_MARKER = ".egenmon-demo"


@dataclass(frozen=True)
class Service:
    """A platform service the demo runs as ``python -m <module> run``."""

    name: str
    module: str
    env: tuple[tuple[str, str], ...] = ()


SERVICES = (
    # Two ingest workers on the shared subscription, as in production (DESIGN.md): one
    # ``ingest run`` supervises them (client ids egenmon-ingest-demo, egenmon-ingest-demo-1).
    Service(
        "ingest", "ingest", (("EGENMON_INGEST_PROCESSES", "2"), ("EGENMON_INGEST_CLIENT_ID", "egenmon-ingest-demo"))
    ),
    Service("alerting", "alerting"),
    Service("clinic_api", "clinic_api"),
)


# Real gateway code over virtual BLE devices: these conditions first (most device kinds).
BLE_CONDITIONS = (Condition.DIABETES_T1, Condition.HEART_FAILURE, Condition.COPD)
# Measurements of the last hour are already on the BLE patients' devices at start (the
# fleet backfills their history up to then); the devices take the rest as time passes.
BLE_BACKLOG = timedelta(hours=1)
# How far ahead the virtual devices' plans reach (the cohort's series end a week after now).
BLE_HORIZON = timedelta(days=7)
VIRTUAL_SCANNER = "simulators.ble.backend:VirtualScanner"
VIRTUAL_CLIENT = "simulators.ble.backend:VirtualClient"


@dataclass
class Children:
    """Subprocesses the demo started, each in its own process group, stopped in reverse."""

    log_dir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Own process group: Ctrl-C in the terminal reaches only the demo, which
                # then stops the services in order; nothing is orphaned.
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs if p.poll() is not None]

    def stop(self, timeout_s: float = 15.0) -> None:
        for _, p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()


@dataclass
class Check:
    name: str
    status: str  # "pass", "fail", "skip"
    detail: str = ""


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    t0 = time.monotonic()
    with console.status(title + " ..."):
        yield
    console.print(f"[green]✓[/green] {title} [dim]({time.monotonic() - t0:.1f} s)[/dim]")


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(interval_s)
    return False


def count(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def matched_alerts(database_url: str, cohort: Cohort) -> list[tuple[AlertRecord, Episode]]:
    """Alerts in the database that match a labelled episode, with that episode."""
    episodes = cohort.episodes()
    alerts = load_alerts(database_url, [p.pseudonym for p in cohort.patients])
    m = match_alerts(alerts, episodes)
    return [(a, episodes[e]) for a, e in zip(alerts, m.episode_of_alert, strict=True) if e is not None]


def prime_ingest(fleet: Fleet, database_url: str, timeout_s: float) -> bool:
    """Republish the first gateway's first readings until ingest has stored them.

    Ingest's subscription starts when its worker is up; readings published before that
    are not queued for it. Republishing is safe: the reading ids dedupe.
    """
    patient = fleet.cohort.patients[0]
    state = GatewayState(patient, fleet.cohort.series(patient))
    lo = int(fleet.cohort.config.start.timestamp())
    docs = gateway_readings(patient, state.sim, lo, lo + 6 * 3600)[:20]
    sql = f"SELECT count(*) FROM observation WHERE patient_id = '{patient.patient_id}'"

    def stored() -> bool:
        fleet.send(state, docs)
        fleet.publisher.flush()
        return count(database_url, sql) > 0

    return wait_until(stored, timeout_s, interval_s=1.0)


@dataclass
class Demo:
    """What one run started and found: stopped and reported in ``close``."""

    state_dir: Path
    smoke: bool
    smoke_timeout: float
    children: Children
    started: list[LocalPostgres | LocalMosquitto] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    publishers: list[Publisher] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    live_thread: threading.Thread | None = None

    def close(self) -> None:
        self.stop.set()
        if self.live_thread is not None:
            self.live_thread.join(timeout=10)
        for p in self.publishers:
            p.close()
        self.children.stop()
        for local in reversed(self.started):
            with contextlib.suppress(Exception):
                local.stop()

    def publisher(self, mqtt_url: str) -> Publisher:
        publisher = Publisher(mqtt_url)
        publisher.connect()
        self.publishers.append(publisher)
        return publisher

    def wait(self, title: str, predicate: Callable[[], bool], interval_s: float = 0.5) -> bool:
        with step(title):
            return wait_until(predicate, self.smoke_timeout, interval_s=interval_s)


@app.command()
def main(
    *,
    state_dir: Annotated[Path, typer.Option(help="Where the throwaway services keep their data")] = STATE_DIR,
    fresh: Annotated[bool, typer.Option(help="Delete the previous demo's data first")] = True,
    patients: Annotated[int, typer.Option(help="Simulated patients in the demo region")] = 50,
    days: Annotated[int, typer.Option(help="Days of history to backfill")] = 30,
    seed: Annotated[int, typer.Option(help="Cohort seed")] = 1,
    speed: Annotated[float, typer.Option(help="Live simulated seconds per wall-clock second")] = 1.0,
    clinic_port: Annotated[int, typer.Option(help="Port of the clinic pages (0: a free one)")] = 8000,
    smoke: Annotated[bool, typer.Option(help="Bounded CI run: check every step, stop, exit 0/1")] = False,
    smoke_timeout: Annotated[float, typer.Option(help="Seconds each smoke wait may take")] = 90.0,
    ble_gateways: Annotated[
        int, typer.Option(help="Patients whose readings go through the real gateway code over virtual BLE")
    ] = 3,
) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if smoke:
        # Long enough for slow episodes (they start after 8-10 days of baseline).
        patients, days = min(patients, 8), min(days, 14)
    prepare_state_dir(state_dir, fresh=fresh)
    install_signal_handlers()
    demo = Demo(state_dir, smoke, smoke_timeout, Children(state_dir / "logs"))
    try:
        run(demo, patients=patients, days=days, seed=seed, speed=speed, clinic_port=clinic_port, n_ble=ble_gateways)
    except KeyboardInterrupt:
        console.print("\nStopping ...")
    finally:
        demo.close()
    if smoke:
        _report(demo.checks)
        raise typer.Exit(0 if demo.checks and all(c.status != "fail" for c in demo.checks) else 1)


def prepare_state_dir(state_dir: Path, *, fresh: bool) -> None:
    if fresh and state_dir.exists():
        # Only ever delete a directory this demo made (a mistyped --state-dir must not
        # cost anyone their files).
        if any(state_dir.iterdir()) and not (state_dir / STATE_MARKER).exists():
            console.print(f"[red]{state_dir} is not an egenmon demo state directory; not deleting it[/red]")
            raise typer.Exit(2)
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_MARKER).touch()


def install_signal_handlers() -> None:
    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Also when started with SIGINT ignored (a background job of a script): Ctrl-C stops.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run(demo: Demo, *, patients: int, days: int, seed: int, speed: float, clinic_port: int, n_ble: int) -> None:
    """The demo's steps in order; in smoke mode it returns after the checks."""
    database_url, mqtt_url = start_storage(demo)
    with step("Applying migrations"):
        mode = migrate(database_url)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    config = cohort_config(patients, days=days, seed=seed, now=now, smoke=demo.smoke)
    base_url = f"http://127.0.0.1:{clinic_port or free_port()}"
    env = service_env(database_url, mqtt_url, base_url)
    with step(f"Seeding a demo region with {patients} simulated patients"):
        cohort = generate_cohort(config)
        result = seed_region(database_url, cohort)
        labels_path = demo.state_dir / "labels.json"
        n_episodes = write_labels(cohort, labels_path)
    demo.checks.append(Check("seed", "pass", f"{result.patients} patients, {n_episodes} labelled episodes"))
    start_services(demo, env)

    ble_patients = pick_ble_patients(cohort, n_ble, now - BLE_BACKLOG, now)
    fleet_cohort = Cohort(config, [p for p in cohort.patients if p not in ble_patients])
    publisher = demo.publisher(mqtt_url)
    with step("Waiting for ingest to subscribe"):
        ok = prime_ingest(Fleet(cohort, publisher), database_url, demo.smoke_timeout)
    demo.checks.append(Check("ingest ready", "pass" if ok else "fail"))
    stats = backfill(cohort, fleet_cohort, Cohort(config, ble_patients), publisher, now=now, days=days)
    demo.checks.append(Check("publish", "pass", f"{stats.readings} readings in {stats.messages} messages"))
    ble_started = datetime.now(UTC)
    start_ble_gateways(demo, ble_patients, cohort, now, env=env, mqtt_url=mqtt_url)
    check_pipeline(
        demo,
        database_url=database_url,
        cohort=cohort,
        stats=stats,
        ble_patients=ble_patients,
        ble_started=ble_started,
        base_url=base_url,
    )
    if demo.smoke:
        return
    demo.live_thread = _start_live(demo, cohort=fleet_cohort, mqtt_url=mqtt_url, now=now, speed=speed)
    console.print(
        f"\n[bold]egenmon is running[/bold] (storage: {mode}).\n"
        f"  staff pages:  {base_url}/\n"
        f"  demo logins:  {login_hint(base_url, database_url)}\n"
        f"  database:     {database_url}\n  broker:       {mqtt_url}\n"
        f"  labels:       {labels_path}\n  service logs: {demo.children.log_dir}\n"
        f"Live gateways publish as time passes (fleet x{speed:g}; "
        f"{len(ble_patients)} real gateways over virtual BLE in real time). Press Ctrl-C to stop."
    )
    while not demo.children.dead():
        time.sleep(0.5)
    console.print(f"[red]service stopped unexpectedly: {', '.join(demo.children.dead())}[/red]")
    raise typer.Exit(1)


def start_storage(demo: Demo) -> tuple[str, str]:
    """(database URL, broker URL): DATABASE_URL / MQTT_URL, else throwaway local services."""
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        with step("Starting a throwaway PostgreSQL"):
            pg = LocalPostgres(demo.state_dir / "postgres")
            demo.started.append(pg)
            pg.start()
            database_url = pg.url
    mqtt_url = os.environ.get("MQTT_URL")
    if not mqtt_url:
        with step("Starting a throwaway Mosquitto"):
            broker = LocalMosquitto(demo.state_dir / "mosquitto")
            demo.started.append(broker)
            broker.start()
            mqtt_url = broker.url
    return database_url, mqtt_url


def cohort_config(patients: int, *, days: int, seed: int, now: datetime, smoke: bool) -> CohortConfig:
    # Smoke: more episodes, so one certainly falls inside the short history.
    habits = Habits(episode_rate_scale=3.0) if smoke else Habits()
    config = CohortConfig(
        patients, seed=seed, start=now - timedelta(days=days), days=days + 7, habits=habits, mix=dict(DEFAULT_MIX)
    )
    if smoke:
        # The engine evaluates at the current time: let an episode end just now.
        config, recent = shift_to_recent_episode(config, now)
        if recent is not None:
            console.print(f"  smoke: a labelled {recent.type} ends at {recent.end:%Y-%m-%d %H:%M} UTC")
    return config


def service_env(database_url: str, mqtt_url: str, base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "MQTT_URL": mqtt_url,
        # Several ingest workers on one machine: let each pick a free metrics port.
        "EGENMON_INGEST_METRICS_PORT": "0",
        "EGENMON_ALERTING_METRICS_PORT": str(free_port()),
        "EGENMON_CLINIC_HOST": "127.0.0.1",
        "EGENMON_CLINIC_PORT": base_url.rsplit(":", 1)[1],
        "EGENMON_CLINIC_PUBLIC_BASE_URL": base_url,
        "EGENMON_CLINIC_MQTT_PUBLIC_URL": mqtt_url,
        # Local demo only: the development OIDC issuer and its login page.
        "EGENMON_CLINIC_DEMO": "true",
        "EGENMON_CLINIC_COOKIE_SECURE": "false",
    }


def seed_region(database_url: str, cohort: Cohort) -> SeedResult:
    """The demo's one seeding step: the clinic's care units and demo staff (the development
    issuer's logins, ``demo-nurse-anna`` ...), then the simulated cohort in those units."""
    with psycopg.connect(database_url) as conn:
        demo_seed.seed_staff(conn)
    return seed_database(database_url, cohort)


def start_services(demo: Demo, env: dict[str, str]) -> None:
    for service in SERVICES:
        with step(f"Starting {service.name}"):
            demo.children.start(
                service.name, [sys.executable, "-m", service.module, "run"], {**env, **dict(service.env)}
            )
        demo.checks.append(Check(f"start {service.name}", "pass"))


def backfill(
    cohort: Cohort, fleet_cohort: Cohort, ble_cohort: Cohort, publisher: Publisher, *, now: datetime, days: int
) -> FleetStats:
    """Publish the history; the BLE patients' ends where their devices' backlog begins."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[readings]} readings"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"Backfilling {days} days of history", total=len(cohort.patients), readings=0)
        stats = FleetStats()
        for part, until in ((fleet_cohort, now), (ble_cohort, now - BLE_BACKLOG)):
            if not part.patients:
                continue
            base_g, base_r = stats.gateways, stats.readings

            def show(g: int, r: int, base_g: int = base_g, base_r: int = base_r) -> None:
                progress.update(task, completed=base_g + g, readings=base_r + r)

            part_stats = Fleet(part, publisher).backfill(until, progress=show)
            stats.gateways += part_stats.gateways
            stats.readings += part_stats.readings
            stats.messages += part_stats.messages
    return stats


def start_ble_gateways(
    demo: Demo, ble_patients: list[PatientSpec], cohort: Cohort, now: datetime, *, env: dict[str, str], mqtt_url: str
) -> None:
    if not ble_patients:
        return
    with step(f"Starting {len(ble_patients)} real gateways over virtual BLE devices"):
        for bp in ble_patients:
            start_ble_gateway(demo.children, demo.state_dir, bp, cohort, now, env=env, mqtt_url=mqtt_url)
    for bp in ble_patients:
        kinds = ", ".join(sorted(d.kind.value for d in bp.devices if d.kind in BLE_DEVICE_TYPES))
        console.print(
            f"  real gateway code: {bp.pseudonym} ({bp.display_name}, {bp.condition.value})"
            f" on {bp.gateway_id}, devices: {kinds}"
        )
        if bp.gateway_id in PATIENT_OUTPUTS:
            url, wav = PATIENT_OUTPUTS[bp.gateway_id]
            console.print(f"    patient kiosk page: {url}  speech: {wav}")


def check_pipeline(
    demo: Demo,
    *,
    database_url: str,
    cohort: Cohort,
    stats: FleetStats,
    ble_patients: list[PatientSpec],
    ble_started: datetime,
    base_url: str,
) -> None:
    """Wait for each stage to show its effect: stored readings, a real gateway's reading, a
    matching alert, the queue page."""
    readings = "SELECT count(DISTINCT reading_id) FROM observation"
    # Duplicate resends share a reading id, so fewer rows than published is right.
    target = int(0.9 * stats.readings)
    ok = demo.wait("Waiting for ingest to store the history", lambda: count(database_url, readings) >= target)
    n_dead = count(database_url, "SELECT count(*) FROM dead_letter")
    detail = f"{count(database_url, readings)} readings stored, {n_dead} dead letters"
    demo.checks.append(Check("ingest", "pass" if ok else "fail", detail))
    if ble_patients:
        ids = [p.gateway_id for p in ble_patients]
        ok = demo.wait(
            "Waiting for a reading through a real gateway",
            lambda: ble_readings(database_url, ids, ble_started) > 0,
        )
        n_ble = ble_readings(database_url, ids, ble_started)
        detail = f"{n_ble} readings from {len(ids)} gateway processes over virtual BLE"
        demo.checks.append(Check("reading through a real gateway", "pass" if ok else "fail", detail))
    ok = demo.wait(
        "Waiting for an alert on a labelled episode",
        lambda: bool(matched_alerts(database_url, cohort)),
        interval_s=2.0,
    )
    n_alerts = count(database_url, "SELECT count(*) FROM alert")
    found = sorted({f"{a.rule_id} on {e.type}" for a, e in matched_alerts(database_url, cohort)})
    detail = f"{n_alerts} alerts; matching: {', '.join(found[:5]) or 'none'}"
    demo.checks.append(Check("alert on labelled episode", "pass" if ok else "fail", detail))
    ok = demo.wait("Waiting for the clinic pages", lambda: _page_status(base_url + "/healthz") == 200)
    demo.checks.append(fetch_queue_page(base_url, database_url, cohort) if ok else Check("queue page", "fail"))


def pick_ble_patients(cohort: Cohort, n: int, lo: datetime, hi: datetime) -> list[PatientSpec]:
    """Up to ``n`` patients for the real gateway code: one per device-rich condition first.

    Patients with a BLE measurement in [lo, hi) (the backlog waiting on their devices) go
    first within a condition, so the gateways have something to read at once.
    """
    if n <= 0:
        return []

    def has_backlog(p: PatientSpec) -> bool:
        return any(m.kind in BLE_DEVICE_TYPES for m in measurement_plan(p, cohort.series(p), lo, hi))

    candidates = [p for p in cohort.patients if any(d.kind in BLE_DEVICE_TYPES for d in p.devices)]
    chosen: list[PatientSpec] = []
    for c in BLE_CONDITIONS:
        of_c = [p for p in candidates if p.condition is c]
        if not of_c or len(chosen) >= n:
            continue
        # Simulating a series costs a little: stop at the first patient with a backlog.
        chosen.append(next((p for p in of_c if has_backlog(p)), of_c[0]))
    chosen.extend([p for p in candidates if p not in chosen][: n - len(chosen)])
    return chosen


# gateway id -> (kiosk page URL, WAV file of the last spoken message) of the real gateways.
PATIENT_OUTPUTS: dict[str, tuple[str, Path]] = {}


def start_ble_gateway(
    children: Children,
    state_dir: Path,
    patient: PatientSpec,
    cohort: Cohort,
    now: datetime,
    *,
    env: dict[str, str],
    mqtt_url: str,
) -> subprocess.Popen[bytes]:
    """``python -m gateway run`` for one patient, its virtual devices holding the patient's plan."""
    gw_dir = state_dir / "gateways" / patient.gateway_id
    gw_dir.mkdir(parents=True, exist_ok=True)
    plan = measurement_plan(patient, cohort.series(patient), now - BLE_BACKLOG, now + BLE_HORIZON)
    scenario = gw_dir / "scenario.json"
    scenario.write_text(json.dumps(ble_scenario(plan)))
    kiosk_port = free_port()
    gw_env = {
        **env,
        SCENARIO_ENV: str(scenario),
        # The seeded gateway and assignment: ingest maps its readings to this patient.
        "EGENMON_GATEWAY_GATEWAY_ID": patient.gateway_id,
        "EGENMON_GATEWAY_STATE_DIR": str(gw_dir / "state"),
        "EGENMON_GATEWAY_MQTT_URL": mqtt_url,
        "EGENMON_GATEWAY_BLE_SCANNER_BACKEND": VIRTUAL_SCANNER,
        "EGENMON_GATEWAY_BLE_CLIENT_BACKEND": VIRTUAL_CLIENT,
        # The demo's devices are the patient's own; no pairing step.
        "EGENMON_GATEWAY_AUTO_ACCEPT": "true",
        "EGENMON_GATEWAY_BLE_IDLE_TIMEOUT_S": "1",
        "EGENMON_GATEWAY_HEARTBEAT_S": "15",
        # The patient's outputs: speech to a WAV file (no sound card needed) and the kiosk page;
        # no quiet hours, so the demo speaks whenever it runs.
        "EGENMON_GATEWAY_OUTPUTS": "voice,screen",
        "EGENMON_GATEWAY_VOICE_WAV_PATH": str(gw_dir / "voice.wav"),
        "EGENMON_GATEWAY_VOICE_QUIET_HOURS": "",
        "EGENMON_GATEWAY_SCREEN_PORT": str(kiosk_port),
    }
    PATIENT_OUTPUTS[patient.gateway_id] = (f"http://127.0.0.1:{kiosk_port}/", gw_dir / "voice.wav")
    return children.start(f"gateway-{patient.gateway_id}", [sys.executable, "-m", "gateway", "run"], gw_env)


def ble_readings(database_url: str, gateway_ids: list[str], since: datetime) -> int:
    """Readings the real gateways received after they started (the fleet's all came before)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT reading_id) FROM observation WHERE gateway_id = ANY(%s) AND received_at >= %s",
            (gateway_ids, since),
        ).fetchone()
    return int(row[0]) if row else 0


def login_hint(base_url: str, database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        subjects = [r[0] for r in conn.execute("SELECT subject FROM staff WHERE active ORDER BY subject").fetchall()]
    return f"{base_url}/dev-issuer/login as any of: {', '.join(subjects)}"


def fetch_queue_page(base_url: str, database_url: str, cohort: Cohort) -> Check:
    """Log in through the development issuer as a clinician and fetch the alert queue."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT subject FROM staff WHERE active AND roles && ARRAY['physician','nurse']"
            " ORDER BY 'physician' = ANY(roles) DESC, subject LIMIT 1"
        ).fetchone()
    if row is None:
        return Check("queue page", "fail", "no clinical demo staff")
    try:
        token = httpx.post(f"{base_url}/dev-issuer/token", json={"subject": row[0]}, timeout=10).json()
        page = httpx.get(
            f"{base_url}/ui/alerts", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10
        )
    except (httpx.HTTPError, KeyError, ValueError) as err:
        return Check("queue page", "fail", f"{type(err).__name__}: {err}")
    if page.status_code != 200:
        return Check("queue page", "fail", f"HTTP {page.status_code}")
    # With alerts open, the queue must show at least one of the simulated patients.
    shown = [p.pseudonym for p in cohort.patients if p.display_name in page.text or p.pseudonym in page.text]
    if count(database_url, "SELECT count(*) FROM alert WHERE status <> 'resolved'") and not shown:
        return Check("queue page", "fail", "open alerts, but no simulated patient on the page")
    return Check("queue page", "pass", f"HTTP 200 as {row[0]}, {len(shown)} simulated patients listed")


def _page_status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5, follow_redirects=False).status_code
    except httpx.HTTPError:
        return 599


def _start_live(demo: Demo, *, cohort: Cohort, mqtt_url: str, now: datetime, speed: float) -> threading.Thread:
    fleet = Fleet(cohort, demo.publisher(mqtt_url))

    def run() -> None:
        try:
            fleet.live(now, speed=speed, stop=demo.stop, tick_s=1.0)
        except Exception:  # the demo keeps running without live data, and says so
            log.exception("live gateways stopped")

    thread = threading.Thread(target=run, name="live-gateways", daemon=True)
    thread.start()
    return thread


def _report(checks: list[Check]) -> None:
    console.print("\n[bold]smoke checks[/bold]")
    for c in checks:
        mark = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]", "skip": "[yellow]SKIP[/yellow]"}[c.status]
        console.print(f"  {mark} {c.name} {c.detail}")


# Kept for tests and callers that wait on a port of a started service.
__all__ = ["SERVICES", "Children", "app", "main", "wait_for_port"]


if __name__ == "__main__":
    app()
