"""Benchmark: reading committed → alert stored, under background load and with sweeps running.

Runs the real services as the tests do: ``python -m ingest run`` and ``python -m alerting run``
as subprocesses on a throwaway PostgreSQL and Mosquitto (deploy.localstack). A region of
``--patients`` patients (type 2 diabetes, capillary glucose, a gateway each) gets background
readings (normal capillary values) from ``--rate`` patients a second; every ``--probe-every``
seconds a probe patient sends a capillary glucose of 2.5 mmol/L, which must raise D1/D2 (a level 2 low). The
figure is the probe's observation ``ingested_at`` (its transaction's commit, within
milliseconds) to the moment its ``alert_finding`` row is visible (polled every 10 ms), split
by whether a sweep chunk was evaluated meanwhile (the alerting log says so).

    python benchmarks/bench_latency.py --patients 5000 --rate 50 --probes 60
    python benchmarks/bench_latency.py --smoke     # seconds, for CI's smoke test
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.localstack import LocalMosquitto, LocalPostgres, free_port  # noqa: E402
from device_profiles.vocabulary import Kind  # noqa: E402
from device_profiles.wire import readings_topic  # noqa: E402
from schema.migrate import migrate  # noqa: E402
from tests.ingest.helpers import Publisher, batch_bytes, make_reading  # noqa: E402


def seed(url: str, n: int) -> list[tuple[str, str]]:
    """``n`` patients with a gateway each; (patient id, gateway id)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO care_unit (code, name) VALUES ('lat', 'Latens')")
        conn.execute(
            """
            INSERT INTO patient (pseudonym, display_name, birth_year, unit_id)
            SELECT 'P-LAT-' || g, 'Bench', 1950, (SELECT id FROM care_unit WHERE code = 'lat')
            FROM generate_series(1, %s) g
            """,
            (n,),
        )
        conn.execute(
            """
            INSERT INTO care_plan (patient_id, version, valid_from, conditions, schedule)
            SELECT id, 1, now() - interval '60 days', '{diabetes_t2}', '{"glucose_capillary": 2}' FROM patient
            """
        )
        conn.execute("INSERT INTO gateway (id) SELECT 'gw-lat-' || substr(pseudonym, 7) FROM patient")
        conn.execute(
            """
            INSERT INTO gateway_assignment (gateway_id, patient_id, valid)
            SELECT 'gw-lat-' || substr(pseudonym, 7), id, tstzrange(now() - interval '60 days', NULL) FROM patient
            """
        )
        conn.execute("ANALYZE")
        return [
            (str(r[0]), str(r[1])) for r in conn.execute("SELECT id, 'gw-lat-' || substr(pseudonym, 7) FROM patient")
        ]


def glucose(gateway: str, value: float, seq: int) -> bytes:
    r = make_reading(
        Kind.GLUCOSE_CAPILLARY,
        serial=f"SN-{gateway[-6:]}",
        seq=seq,
        measured_at=datetime.now(UTC),
        values={"glucose": value},
    )
    return batch_bytes(gateway, [r], seq=seq)


def background(broker: str, targets: list[tuple[str, str]], rate: float, stop: threading.Event) -> None:
    pub = Publisher(broker)
    seq = 1_000_000
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            for _, gw in random.sample(targets, min(len(targets), max(1, int(rate)))):
                seq += 1
                pub.client.publish(readings_topic(gw), glucose(gw, round(random.uniform(5.5, 9.0), 1), seq), qos=1)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
    finally:
        pub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=50.0, help="background patients per second")
    ap.add_argument("--probes", type=int, default=60)
    ap.add_argument("--probe-every", type=float, default=1.0)
    ap.add_argument("--sweep-interval", type=float, default=20.0)
    ap.add_argument("--probe-timeout", type=float, default=60.0)
    ap.add_argument("--sweep-chunk", type=int, default=5000)
    a = ap.parse_args()
    if a.smoke:
        a.patients, a.rate, a.probes, a.probe_every, a.sweep_interval, a.sweep_chunk = 60, 5, 6, 0.5, 2.0, 20
        a.probe_timeout = 10.0
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared with other work)")
    tmp = Path(tempfile.mkdtemp(prefix="egenmon-bench-lat-"))
    pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="egenmon-bench-pg-")), durable=False)
    broker = LocalMosquitto(tmp / "mqtt")
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        pg.start()
        broker.start()
        os.environ["EGENMON_DISABLE_TIMESCALEDB"] = "1"
        migrate(pg.url)
        people = seed(pg.url, a.patients)
        n_probe = max(a.probes, 1)
        probes, region = people[:n_probe], people[n_probe:] or people
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": pg.url, "MQTT_URL": broker.url}
        alert_log = tmp / "alerting.log"
        with (tmp / "ingest.log").open("wb") as il, alert_log.open("wb") as al:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ingest", "run"],
                    cwd=ROOT,
                    env={**env, "EGENMON_INGEST_METRICS_PORT": str(free_port())},
                    stdout=il,
                    stderr=il,
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "alerting", "run"],
                    cwd=ROOT,
                    env={
                        **env,
                        "EGENMON_ALERTING_METRICS_PORT": "0",
                        "EGENMON_ALERTING_SWEEP_INTERVAL_S": str(a.sweep_interval),
                        "EGENMON_ALERTING_SWEEP_CHUNK": str(a.sweep_chunk),
                        "EGENMON_ALERTING_REPLAY_POLL_S": "0",
                    },
                    stdout=al,
                    stderr=al,
                )
            )
        deadline = time.monotonic() + 60
        while "sweep done" not in alert_log.read_text():
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("services did not start:\n" + alert_log.read_text()[-2000:])
            time.sleep(0.1)
        time.sleep(1.0)  # ingest subscribed
        bg = threading.Thread(target=background, args=(broker.url, region, a.rate, stop), daemon=True)
        bg.start()
        time.sleep(min(5.0, a.probe_every * 2))
        pub = Publisher(broker.url)
        inside: list[float] = []
        outside: list[float] = []
        missed = 0
        with psycopg.connect(pg.url, autocommit=True) as conn:
            for k, (pid, gw) in enumerate(probes):
                t0 = time.monotonic()
                sweeps_before = alert_log.read_text().count("trigger=sweep")
                pub.publish(readings_topic(gw), [glucose(gw, 2.5, k)])
                lat = None
                while time.monotonic() - t0 < a.probe_timeout:
                    row = conn.execute(
                        "SELECT extract(epoch FROM clock_timestamp() - o.ingested_at) FROM alert_finding f "
                        "JOIN observation o ON o.patient_id = f.patient_id AND o.kind = 'glucose_capillary' "
                        "WHERE f.patient_id = %s AND f.rule_id IN ('D1', 'D2') LIMIT 1",
                        (pid,),
                    ).fetchone()
                    if row is not None:
                        lat = float(row[0])
                        break
                    time.sleep(0.01)
                if lat is None:
                    missed += 1
                else:
                    swept = alert_log.read_text().count("trigger=sweep") > sweeps_before
                    (inside if swept else outside).append(lat * 1e3)
                time.sleep(max(0.0, a.probe_every - (time.monotonic() - t0)))
        pub.close()
        if missed:
            for name in ("ingest.log", "alerting.log"):
                print(f"--- {name} (tail)\n" + (tmp / name).read_text()[-1500:])
        print(
            f"region {a.patients:,} patients, background {a.rate:g} patients/s, sweep every {a.sweep_interval:g} s "
            f"in chunks of {a.sweep_chunk:,}; {len(probes)} probes, {missed} without an alert in {a.probe_timeout:g} s"
        )
        for name, xs in (("outside sweeps", outside), ("inside sweeps", inside), ("all", outside + inside)):
            if xs:
                p50, p99 = np.percentile(xs, [50, 99])
                print(f"  commit -> alert {name:15s} n={len(xs):3d}  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms")
            else:
                print(f"  commit -> alert {name:15s} n=  0")
    finally:
        stop.set()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(pg.base_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
