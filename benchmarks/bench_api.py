"""Clinic API latency under concurrent load (issue 6).

Two figures, p50/p99 latency and throughput, for:
  alert queue   GET /api/v1/alerts (a unit's open queue, ~150 alerts with evidence)
  cgm 90 days   GET /api/v1/patients/{id}/observations, 90 days of 5-minute CGM
                (~25,000 points) downsampled server-side to 500 buckets

The API runs as its own process (``python -m clinic_api run``, one uvicorn worker) against
a throwaway PostgreSQL; this script is the second process, generating load over loopback
with keep-alive connections from several threads. Every request is authenticated
(dev-issuer token verified per request) and writes its audit row, as in production.
Target: p99 < 100 ms for both on the development machine (2 cores).

    python benchmarks/bench_api.py            # full run (~1 min)
    python benchmarks/bench_api.py --smoke    # tiny run, for the smoke test
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from clinic_api import demo_seed  # noqa: E402
from deploy.localstack import LocalPostgres, free_port  # noqa: E402
from schema.migrate import migrate  # noqa: E402


def seed(url: str, *, cgm_points: int, queue_patients: int) -> uuid.UUID:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url) as conn:
        units = demo_seed.seed_staff(conn)
        unit = units["MON-NORD"]
        pid = conn.execute(
            "INSERT INTO patient (pseudonym, display_name, unit_id)"
            " VALUES ('P-BENCH-CGM', 'Bench CGM', %s) RETURNING id",
            (unit,),
        ).fetchone()
        assert pid is not None
        patient_id: uuid.UUID = pid[0]
        # Every 5 minutes back from now: 90 days is 25,920 readings.
        t = now - dt.timedelta(minutes=5) * np.arange(cgm_points)[::-1]
        hours = np.array([x.timestamp() for x in t]) / 3600.0
        rng = np.random.default_rng(1)
        g = 7.5 + 2.5 * np.sin(hours / 24 * 2 * np.pi) + rng.normal(0, 0.6, cgm_points)
        with conn.cursor().copy(
            "COPY observation (reading_id, component, measured_at, patient_id, gateway_id, device_address, kind,"
            " value, unit, received_at) FROM STDIN"
        ) as cp:
            for ti, gi in zip(t, g, strict=True):
                cp.write_row(
                    (
                        uuid.uuid4(),
                        "glucose_interstitial",
                        ti,
                        patient_id,
                        "gw-bench",
                        "AA",
                        "glucose_cgm",
                        round(float(max(2.2, gi)), 1),
                        "mmol/L",
                        ti,
                    )
                )
        severities = ["low", "medium", "high", "critical", "info"]
        for i in range(queue_patients):
            row = conn.execute(
                "INSERT INTO patient (pseudonym, display_name, unit_id) VALUES (%s, %s, %s) RETURNING id",
                (f"P-BENCH-{i:05d}", f"Bench {i}", unit),
            ).fetchone()
            assert row is not None
            conn.execute(
                """INSERT INTO alert (patient_id, rule_id, event_type, condition, severity, title, opened_at,
                                      shown_to_staff_at, evidence)
                   VALUES (%s, 'HF1', 'fluid_retention', 'heart_failure', %s, 'Viktökning > 2 kg på 3 dygn', %s, %s,
                           %s)""",
                (
                    row[0],
                    severities[i % 5],
                    now - dt.timedelta(minutes=i),
                    now - dt.timedelta(minutes=i),
                    Jsonb({"rule_id": "HF1", "gain_kg": 2.4, "threshold_kg": 2.0, "threshold_source": "default"}),
                ),
            )
        conn.execute("ANALYZE")
    return patient_id


def load(base: str, path: str, headers: dict[str, str], *, requests: int, concurrency: int) -> tuple[np.ndarray, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = max(1, requests // concurrency)

    def worker() -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for _ in range(per_thread):
                t0 = time.perf_counter()
                r = client.get(path)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return np.array(latencies) * 1000.0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for the smoke test")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--requests", type=int, default=2000, help="requests per scenario")
    args = ap.parse_args()
    cgm_points = 2000 if args.smoke else 90 * 288
    queue_patients = 20 if args.smoke else 150
    n_requests = 40 if args.smoke else args.requests
    concurrency = 2 if args.smoke else args.concurrency

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
        patient_id = seed(url, cgm_points=cgm_points, queue_patients=queue_patients)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "EGENMON_CLINIC_DEMO": "1",
            "EGENMON_CLINIC_PORT": str(port),
            "EGENMON_CLINIC_PUBLIC_BASE_URL": base,
            "EGENMON_CLINIC_POOL_MAX_SIZE": str(max(4, concurrency * 2)),
        }
        log = (tmp / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "clinic_api", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("clinic_api did not start:\n" + (tmp / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        token = httpx.post(f"{base}/dev-issuer/token", json={"subject": demo_seed.STAFF[0].subject}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        start = end - dt.timedelta(days=90)
        q = httpx.QueryParams(
            component="glucose_interstitial", start=start.isoformat(), end=end.isoformat(), max_points=500
        )
        scenarios = {
            "alert queue": "/api/v1/alerts",
            "cgm 90 days": f"/api/v1/patients/{patient_id}/observations?{q}",
        }
        check = httpx.get(base + scenarios["cgm 90 days"], headers=headers, timeout=30).json()
        n_points = sum(p["n"] for p in check["points"])
        print(f"clinic_api latency: {concurrency} client threads, {n_requests} requests per scenario")
        print(f"  cgm series: {n_points} readings -> {len(check['points'])} buckets; queue: {queue_patients} alerts")
        for name, path in scenarios.items():
            load(base, path, headers, requests=max(10, n_requests // 10), concurrency=concurrency)  # warm-up
            lat, wall = load(base, path, headers, requests=n_requests, concurrency=concurrency)
            p50, p99 = np.percentile(lat, [50, 99])
            verdict = "ok" if p99 < 100 else "ABOVE TARGET"
            print(
                f"  {name:12s}  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {lat.max():6.1f} ms  "
                f"{len(lat) / wall:7.1f} req/s  (target p99 < 100 ms: {verdict})"
            )
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
