"""Clinic API latency under realistic data and 4 concurrent clients (issues 6 and 16).

The database is seeded as production leaves it: many patients' readings interleaved in
time (binary COPY, ``obs_copy``), 90 days of home blood pressure and weight for every
patient and of 5-minute CGM for a share of them, and an alert history of ~2,000 alerts in
every status with their events (opened, acknowledged, comments, snoozes, escalations,
assignments, resolutions). The chart patient is one CGM patient among them.

Scenarios, each run by ``--concurrency`` client threads (keep-alive connections) and
printed as p50/p95/p99/max and requests per second:
  alert queue      GET /api/v1/alerts                (the open queue, up to 200 alerts)
  queue page       GET /ui/alerts                    (the same queue as the page)
  queue fragment   GET /ui/alerts/fragment           (what the page polls every 30 s)
  alert detail     GET /api/v1/alerts/{id}           (alerts with their event history)
  alert page       GET /ui/alerts/{id}
  cgm 90 days      GET /api/v1/patients/{id}/observations, 90 days of CGM in 500 buckets
  cgm 90 days page GET /ui/patients/{id}?days=90     (every chart of the patient, 90 days)

The API runs as its own process (``python -m clinic_api run``, one uvicorn worker) against
a throwaway PostgreSQL; this script is the second process, generating load over loopback.
Every request is authenticated (the dev issuer's RS256 token, verified per request; the
pages accept the same bearer token as their session cookie) and writes its audit row, as
in production. Target: p99 < 100 ms for the queue and the 90-day chart. Latency on a
shared machine mostly measures its load, so each scenario also prints the CPU time the
server spent per request (the app process plus, for the script's own cluster, PostgreSQL's
backends), which other work disturbs far less.

    python benchmarks/bench_api.py              # full run (a few minutes)
    python benchmarks/bench_api.py --smoke      # tiny run, for the smoke test
    python benchmarks/bench_api.py --explain    # also EXPLAIN ANALYZE the queue and series queries
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from benchmarks.obs_copy import copy_observations, patient_ids  # noqa: E402
from clinic_api import demo_seed, queries  # noqa: E402
from clinic_api.queries.staff import load_staff  # noqa: E402
from deploy.localstack import LocalPostgres, free_port  # noqa: E402
from schema.migrate import migrate  # noqa: E402

DAY = 86_400.0
CLIENT = demo_seed.STAFF[1].subject  # the physician: both units, so the largest queue


@dataclass(frozen=True)
class Size:
    patients: int
    cgm_patients: int
    cgm_points: int  # per CGM patient, every 5 minutes back from now
    alerts: int
    requests: int
    concurrency: int


FULL = Size(patients=400, cgm_patients=40, cgm_points=90 * 288, alerts=2000, requests=600, concurrency=4)
SMOKE = Size(patients=20, cgm_patients=2, cgm_points=2000, alerts=120, requests=40, concurrency=2)


def _series(size: Size, now_s: float, rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(kind.component, patient index, epoch time, value) for ``copy_observations``."""
    days = 90
    out: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    # CGM: patients 0 .. cgm_patients-1 (0 is the chart patient), one value every 5 minutes.
    k = np.arange(size.cgm_points, dtype=np.float64)
    pat = np.repeat(np.arange(size.cgm_patients), size.cgm_points)
    t = np.tile(now_s - 300.0 * k[::-1], size.cgm_patients) - rng.uniform(0, 300, size.cgm_patients).repeat(
        size.cgm_points
    )
    g = 7.5 + 2.5 * np.sin(t / DAY * 2 * np.pi) + rng.normal(0, 0.6, len(t))
    out.append(("glucose_cgm.glucose_interstitial", pat, t, np.round(np.maximum(2.2, g), 1)))
    # Blood pressure morning and evening, weight every morning, for every patient.
    d = np.arange(days, dtype=np.float64)
    for name, hours in (("bp", (7.5, 19.5)), ("weight", (7.0,))):
        ts = np.concatenate([now_s - (days - d) * DAY + h * 3600.0 for h in hours])
        pat = np.repeat(np.arange(size.patients), len(ts))
        tt = np.tile(ts, size.patients) + rng.uniform(-1800, 1800, len(pat))
        keep = tt < now_s
        pat, tt = pat[keep], tt[keep]
        if name == "bp":
            out.append(("blood_pressure.systolic", pat, tt, np.round(rng.normal(138, 12, len(tt)))))
            out.append(("blood_pressure.diastolic", pat, tt, np.round(rng.normal(84, 8, len(tt)))))
            out.append(("blood_pressure.pulse", pat, tt, np.round(rng.normal(72, 9, len(tt)))))
        else:
            base = rng.normal(82, 12, size.patients)[pat]
            out.append(("weight.weight", pat, tt, np.round(base + rng.normal(0, 0.4, len(tt)), 1)))
    return out


# Event types and the rule that leads each (the lifecycle's vocabulary, device_profiles).
EVENTS = (
    ("fluid_retention", "HF1", "heart_failure", "Viktökning > 2 kg på 3 dygn"),
    ("bp_control", "H1", "hypertension", "Förhöjt blodtryck, 7-dagarsmedel"),
    ("bp_crisis", "H3", "hypertension", "Mycket högt blodtryck"),
    ("hypoglycaemia", "D1", "diabetes_t1", "Lågt blodsocker"),
    ("hyperglycaemia", "D3", "diabetes_t1", "Högt blodsocker"),
    ("missing_data", "M1", None, "Inga mätningar på 3 dygn"),
    ("pulse", "H5", "hypertension", "Avvikande puls"),
)

# One alert history, written by SQL over generate_series (a few hundred ms for 2,000 alerts):
# for alert n, status, severity, age and staff work follow from n, so the queue holds every
# status and the non-resolved alerts never share (patient, event type) (the schema's rule).
SEED_ALERTS_SQL = """
WITH staff_ids AS (
    SELECT array_agg(id ORDER BY subject) AS ids FROM staff WHERE 'nurse' = ANY(roles) OR 'physician' = ANY(roles)
), spec AS (
    SELECT n,
           -- 40 %% resolved history, the rest open (35 %%), acknowledged, snoozed, awaiting.
           CASE WHEN n %% 20 < 8 THEN 'resolved' WHEN n %% 20 < 15 THEN 'open' WHEN n %% 20 < 18 THEN 'acknowledged'
                WHEN n %% 20 < 19 THEN 'snoozed' ELSE 'awaiting_confirmation' END AS status,
           (ARRAY['info','low','medium','high','critical'])[1 + (n * 7) %% 5] AS severity,
           make_interval(mins => (n * 37) %% (60 * 24 * 60)) AS age
    FROM generate_series(0, %(alerts)s - 1) AS n
)
INSERT INTO alert (patient_id, rule_id, event_type, condition, severity, title, status, opened_at, updated_at,
                   last_fired_at, fire_count, latest_value, evidence, snoozed_until, acknowledged_at, acknowledged_by,
                   escalated_at, escalation_level, escalated_to, escalated_to_role, assigned_to, resolved_at,
                   resolved_by, resolution_reason, shown_to_staff_at, confirm_by, route)
SELECT p.id, e.rule_id, e.event_type, e.condition, s.severity, e.title, s.status, now() - s.age, now() - s.age / 2,
       now() - s.age / 3, 1 + s.n %% 4, 80 + s.n %% 30,
       jsonb_build_object('rule_id', e.rule_id, 'gain_kg', 2.4, 'threshold_kg', 2.0, 'threshold_source', 'default',
                          'readings', jsonb_build_array(
                              jsonb_build_object('at', now() - s.age, 'value', 84.1),
                              jsonb_build_object('at', now() - s.age - interval '3 days', 'value', 81.7))),
       CASE WHEN s.status = 'snoozed' THEN now() + interval '4 hours' END,
       CASE WHEN s.status IN ('acknowledged', 'snoozed', 'resolved') THEN now() - s.age / 2 END,
       CASE WHEN s.status IN ('acknowledged', 'snoozed', 'resolved') THEN st.ids[1 + s.n %% cardinality(st.ids)] END,
       CASE WHEN s.n %% 7 = 0 THEN now() - s.age / 2 END, CASE WHEN s.n %% 7 = 0 THEN 1 ELSE 0 END,
       CASE WHEN s.n %% 14 = 0 THEN st.ids[1 + (s.n + 1) %% cardinality(st.ids)] END,
       CASE WHEN s.n %% 7 = 0 AND s.n %% 14 <> 0 THEN 'physician' END,
       CASE WHEN s.n %% 3 = 0 THEN st.ids[1 + (s.n + 2) %% cardinality(st.ids)] END,
       CASE WHEN s.status = 'resolved' THEN now() - s.age / 3 END,
       CASE WHEN s.status = 'resolved' THEN st.ids[1 + s.n %% cardinality(st.ids)] END,
       CASE WHEN s.status = 'resolved' THEN 'no_action_needed' END,
       CASE WHEN s.status <> 'awaiting_confirmation' THEN now() - s.age END,
       CASE WHEN s.status = 'awaiting_confirmation' THEN now() + interval '15 minutes' END,
       'staff'
FROM spec s CROSS JOIN staff_ids st
JOIN LATERAL (SELECT * FROM unnest(%(event_types)s::text[], %(rules)s::text[], %(conditions)s::text[],
                                   %(titles)s::text[])
                   WITH ORDINALITY AS x(event_type, rule_id, condition, title, k)
              WHERE x.k = 1 + (s.n / %(patients)s) %% %(n_events)s) e ON true
JOIN patient p ON p.id = ('00000000-0000-0000-0000-' || lpad(to_hex(1 + s.n %% %(patients)s), 12, '0'))::uuid
"""

# Each alert's history: opened, then by status acknowledged / commented / escalated /
# assigned / snoozed / resolved, in time order.
SEED_EVENTS_SQL = """
INSERT INTO alert_event (alert_id, event, at, staff_id, comment, details)
SELECT a.id, ev.event, ev.at, ev.staff_id, ev.comment, ev.details
FROM alert a CROSS JOIN LATERAL (VALUES
    ('opened', a.opened_at, NULL::uuid, NULL::text, '{}'::jsonb, true),
    ('acknowledged', a.acknowledged_at, a.acknowledged_by, NULL, '{}', a.acknowledged_at IS NOT NULL),
    ('commented', a.opened_at + (now() - a.opened_at) / 3, a.acknowledged_by, 'Ringt patienten, mår bra.', '{}',
     a.acknowledged_by IS NOT NULL),
    ('commented', a.opened_at + (now() - a.opened_at) / 2, a.acknowledged_by, 'Ny kontroll i morgon.', '{}',
     a.acknowledged_by IS NOT NULL AND a.id % 2 = 0),
    ('escalated', a.escalated_at, a.acknowledged_by, 'Bedömning av läkare.',
     jsonb_build_object('to', a.escalated_to, 'role', a.escalated_to_role), a.escalated_at IS NOT NULL),
    ('assigned', a.opened_at + interval '1 minute', a.assigned_to, NULL,
     jsonb_build_object('to', a.assigned_to), a.assigned_to IS NOT NULL),
    ('snoozed', a.acknowledged_at, a.acknowledged_by, NULL, jsonb_build_object('until', a.snoozed_until),
     a.status = 'snoozed'),
    ('resolved', a.resolved_at, a.resolved_by, NULL, jsonb_build_object('reason', a.resolution_reason),
     a.status = 'resolved')
) AS ev(event, at, staff_id, comment, details, present)
WHERE ev.present
"""


def seed(url: str, size: Size) -> tuple[uuid.UUID, list[int]]:
    """Seed the region; returns the chart patient and alert ids with the longest histories."""
    now_s = time.time()
    rng = np.random.default_rng(16)
    with psycopg.connect(url) as conn:
        units = demo_seed.seed_staff(conn)
        unit_ids = [units["MON-NORD"], units["MON-SYD"]]
        ids = patient_ids(size.patients)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO patient (id, pseudonym, display_name, birth_year, unit_id) VALUES (%s, %s, %s, %s, %s)",
                [(pid, f"P-BENCH-{i:05d}", f"Bench {i}", 1940 + i % 50, unit_ids[i % 2]) for i, pid in enumerate(ids)],
            )
        conn.commit()
        t0 = time.perf_counter()
        rows = copy_observations(conn, _series(size, now_s, rng), size.patients)
        conn.commit()
        t_obs = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute(
            SEED_ALERTS_SQL,
            {
                "alerts": size.alerts,
                "patients": size.patients,
                "n_events": len(EVENTS),
                "event_types": [e[0] for e in EVENTS],
                "rules": [e[1] for e in EVENTS],
                "conditions": [e[2] for e in EVENTS],
                "titles": [e[3] for e in EVENTS],
            },
        )
        conn.execute(SEED_EVENTS_SQL)
        conn.commit()
        t_alerts = time.perf_counter() - t0
        conn.autocommit = True  # VACUUM runs outside a transaction
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute("SELECT status, count(*) FROM alert GROUP BY status ORDER BY count(*) DESC").fetchall()
        n_events = conn.execute("SELECT count(*) FROM alert_event").fetchone()
        busiest = conn.execute(
            """SELECT a.id FROM alert a JOIN alert_event e ON e.alert_id = a.id
               WHERE a.status <> 'resolved' GROUP BY a.id ORDER BY count(*) DESC, a.id LIMIT 20"""
        ).fetchall()
    print(
        f"seeded {size.patients} patients ({size.cgm_patients} with CGM), {rows:,} readings interleaved in time"
        f" ({t_obs:.1f} s), {size.alerts} alerts ({', '.join(f'{n} {s}' for s, n in counts)})"
        f" with {n_events[0] if n_events else 0:,} events ({t_alerts:.1f} s)"
    )
    return uuid.UUID(ids[0]), [int(r[0]) for r in busiest]


_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def _cpu_ms(pids: Sequence[int]) -> float:
    """User + system CPU of ``pids`` so far, in ms (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that has exited
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * _TICK_MS


def _server_pids(app_pid: int, pgdata: Path | None) -> list[int]:
    """The app's process and, for our own cluster, the postmaster and all its backends."""
    pids = [app_pid]
    if pgdata is not None and (pgdata / "postmaster.pid").exists():
        master = int((pgdata / "postmaster.pid").read_text().split()[0])
        pids.append(master)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def load(
    base: str, paths: Sequence[str], headers: dict[str, str], *, requests: int, concurrency: int
) -> tuple[np.ndarray, float]:
    """``requests`` GETs spread over ``concurrency`` threads, each cycling through ``paths``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_thread = max(1, requests // concurrency)

    def worker(offset: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for i in range(per_thread):
                path = paths[(offset + i) % len(paths)]
                t0 = time.perf_counter()
                r = client.get(path)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    with lock:
                        errors.append(f"{path}: {r.status_code} {r.text[:200]}")
                    return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise RuntimeError(errors[0])
    return np.array(latencies) * 1000.0, time.perf_counter() - t0


class _Explaining:
    """Stands in for a connection: every query the clinic code sends is run as EXPLAIN
    (ANALYZE, BUFFERS) on the real one and its plan printed; the caller gets no rows."""

    def __init__(self, conn: psycopg.Connection[Any], name: str) -> None:
        self.conn, self.name = conn, name

    def _explain(self, sql: Any, params: Any = None, **_: Any) -> _Explaining:
        plan = self.conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params).fetchall()
        print(f"  EXPLAIN {self.name}:")
        for (line,) in plan:
            print(f"    {line}")
        return self

    execute = _explain

    def cursor(self, **_: Any) -> _Explaining:
        return self

    def __enter__(self) -> _Explaining:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> None:
        return None


def explain(url: str, patient: uuid.UUID, alert_id: int) -> None:
    """The plans of the queue, one alert's events and the 90-day chart's queries, as the app sends them."""
    with psycopg.connect(url) as conn:
        staff = load_staff(conn, CLIENT, None)
        assert staff is not None
        now = dt.datetime.now(dt.UTC)
        start = now - dt.timedelta(days=90)
        fake: Any = _Explaining(conn, "alert queue")
        queries.alert_queue(fake, staff, statuses=["open"])
        queries.alert_events(_Explaining(conn, "alert events"), alert_id)  # type: ignore[arg-type]
        queries.series(
            _Explaining(conn, "cgm 90 days"),  # type: ignore[arg-type]
            patient,
            "glucose_interstitial",
            start=start,
            end=now,
            max_points=500,
        )
        queries.components_present(_Explaining(conn, "components present (page)"), patient, start)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for the smoke test")
    ap.add_argument("--concurrency", type=int, help=f"client threads (default {FULL.concurrency})")
    ap.add_argument("--requests", type=int, help=f"requests per scenario (default {FULL.requests})")
    ap.add_argument("--alerts", type=int, help=f"alerts in the history (default {FULL.alerts})")
    ap.add_argument("--only", nargs="*", help="run only these scenarios (names as printed)")
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the queue and series queries")
    args = ap.parse_args()
    size = SMOKE if args.smoke else FULL
    if args.alerts and args.alerts > size.patients * len(EVENTS):
        ap.error(f"at most {size.patients * len(EVENTS)} alerts: one open alert per patient and event type")
    size = Size(
        patients=size.patients,
        cgm_patients=size.cgm_patients,
        cgm_points=size.cgm_points,
        alerts=args.alerts or size.alerts,
        requests=args.requests or size.requests,
        concurrency=args.concurrency or size.concurrency,
    )

    tmp = Path(tempfile.mkdtemp(prefix="egenmon-bench-api-"))
    pg: LocalPostgres | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        url = os.environ.get("EGENMON_BENCH_DATABASE_URL")
        if not url:
            # Its own directory, as the test harness does: the postgres user must own it when run as root.
            pg_dir = Path(tempfile.mkdtemp(prefix="egenmon-bench-pg-"))
            pg = LocalPostgres(pg_dir, durable=False)
            pg.start()
            url = pg.url
        migrate(url)
        patient_id, busy_alerts = seed(url, size)
        if args.explain:
            explain(url, patient_id, busy_alerts[0])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "EGENMON_CLINIC_DEMO": "1",
            "EGENMON_CLINIC_PORT": str(port),
            "EGENMON_CLINIC_PUBLIC_BASE_URL": base,
            "EGENMON_CLINIC_POOL_MAX_SIZE": str(max(4, size.concurrency * 2)),
        }
        log = (tmp / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "clinic_api", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 180  # importing the app alone took over 60 s on a loaded machine
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("clinic_api did not start:\n" + (tmp / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        token = httpx.post(f"{base}/dev-issuer/token", json={"subject": CLIENT}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        start = end - dt.timedelta(days=90)
        q = httpx.QueryParams(
            component="glucose_interstitial", start=start.isoformat(), end=end.isoformat(), max_points=500
        )
        scenarios: dict[str, list[str]] = {
            "alert queue": ["/api/v1/alerts"],
            "queue page": ["/ui/alerts"],
            "queue fragment": ["/ui/alerts/fragment"],
            "alert detail": [f"/api/v1/alerts/{a}" for a in busy_alerts],
            "alert page": [f"/ui/alerts/{a}" for a in busy_alerts],
            "cgm 90 days": [f"/api/v1/patients/{patient_id}/observations?{q}"],
            "cgm 90 days page": [f"/ui/patients/{patient_id}?days=90"],
        }
        check = httpx.get(base + scenarios["cgm 90 days"][0], headers=headers, timeout=60).json()
        n_points = sum(p["n"] for p in check["points"])
        queue = httpx.get(base + "/api/v1/alerts", headers=headers, timeout=60).json()
        print(f"clinic_api latency: {size.concurrency} client threads, {size.requests} requests per scenario")
        print(
            f"  cgm series: {n_points} readings -> {len(check['points'])} buckets;"
            f" queue: {len(queue)} alerts shown of {size.alerts}"
        )
        print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for name, paths in scenarios.items():
            if args.only and name not in args.only:
                continue
            load(base, paths, headers, requests=max(8, size.requests // 10), concurrency=size.concurrency)  # warm-up
            pids = _server_pids(server.pid, pg.data_dir if pg is not None else None)
            cpu0 = _cpu_ms(pids)
            lat, wall = load(base, paths, headers, requests=size.requests, concurrency=size.concurrency)
            cpu = (_cpu_ms(pids) - cpu0) / len(lat)
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            target = name in ("alert queue", "queue page", "queue fragment") or name.startswith("cgm")
            verdict = ("ok" if p99 < 100 else "ABOVE TARGET") if target else "no target"
            print(
                f"  {name:16s}  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms  max {lat.max():6.1f} ms"
                f"  {len(lat) / wall:6.1f} req/s  cpu {cpu:5.1f} ms/req  (p99 < 100 ms: {verdict})"
            )
        print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        if pg is not None:
            pg.stop(mode="immediate")
            shutil.rmtree(pg.base_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
