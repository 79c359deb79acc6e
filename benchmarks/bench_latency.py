"""Benchmark: reading committed → alert stored, under background load and with sweeps running.

Runs the real services as the tests do: ``python -m ingest run`` and ``python -m alerting run``
as subprocesses on a throwaway PostgreSQL and Mosquitto (deploy.localstack). A region of
``--patients`` patients (type 2 diabetes, capillary glucose, a gateway each) gets background
readings (normal capillary values) from ``--rate`` patients a second; every ``--probe-every``
seconds a probe patient sends a capillary glucose of 2.5 mmol/L, which must raise D4 at high
severity (a level 2 low on a finger-prick meter; D1/D2 are the CGM episode rules, which a
single capillary value never fires). The figure is the probe's observation ``ingested_at``
(its transaction's commit, within milliseconds) to the moment its ``alert_finding`` row is
visible (polled every 10 ms), split by whether a sweep chunk was evaluated meanwhile (the
alerting log says so). Every patient starts with ``--history-days`` of twice-daily readings,
as a region in steady operation has.

    python benchmarks/bench_latency.py --patients 5000 --rate 50 --probes 60
    python benchmarks/bench_latency.py --smoke     # seconds, for CI's smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerting.rules.framework import CAPILLARY  # noqa: E402
from alerting.series import SEC_PER_DAY  # noqa: E402
from benchmarks.obs_copy import copy_observations, patient_ids  # noqa: E402
from deploy.localstack import LocalMosquitto, LocalPostgres, free_port  # noqa: E402
from device_profiles.vocabulary import Kind  # noqa: E402
from device_profiles.wire import readings_topic  # noqa: E402
from schema.migrate import migrate  # noqa: E402
from tests.ingest.helpers import Publisher, batch_bytes, make_reading  # noqa: E402


def seed(url: str, n: int, history_days: float) -> tuple[list[tuple[str, str]], int]:
    """``n`` patients with a gateway each and ``history_days`` of twice-daily capillary readings.

    Returns ((patient id, gateway id) per patient, history rows). The history makes the region
    a steady one (no patient missing today's data, so the first sweep opens no gap events)
    and gives the loaders a realistic window to read: 2 readings a day for the 29-day grid.
    """
    ids = patient_ids(n)
    since = datetime.now(UTC) - timedelta(days=60)
    with psycopg.connect(url, autocommit=True) as conn:
        unit = conn.execute("INSERT INTO care_unit (code, name) VALUES ('lat', 'Latens') RETURNING id").fetchone()
        assert unit is not None
        with conn.cursor().copy("COPY patient (id, pseudonym, display_name, birth_year, unit_id) FROM STDIN") as cp:
            for i, pid in enumerate(ids):
                cp.write_row((pid, f"P-LAT-{i + 1}", "Bench", 1950, unit[0]))
        conn.execute(
            """
            INSERT INTO care_plan (patient_id, version, valid_from, conditions, schedule)
            SELECT id, 1, %s, '{diabetes_t2}', '{"glucose_capillary": 2}' FROM patient
            """,
            (since,),
        )
        conn.execute("INSERT INTO gateway (id) SELECT 'gw-lat-' || substr(pseudonym, 7) FROM patient")
        conn.execute(
            """
            INSERT INTO gateway_assignment (gateway_id, patient_id, valid)
            SELECT 'gw-lat-' || substr(pseudonym, 7), id, tstzrange(%s, NULL) FROM patient
            """,
            (since,),
        )
        rows = 0
        per_patient = int(2 * history_days)
        if per_patient > 0:
            rng = np.random.default_rng(7)
            now = time.time()
            # Twice a day, the newest within the last 12 hours, jittered by up to an hour.
            k = np.arange(per_patient, dtype=np.float64)
            t = now - 0.5 * SEC_PER_DAY * (k[None, :] + rng.uniform(0.05, 1.0, size=(n, 1)))
            t = t + rng.uniform(-1800, 1800, size=t.shape)
            pat = np.repeat(np.arange(n, dtype=np.int64), per_patient)
            v = np.round(rng.uniform(5.5, 9.0, size=pat.size), 1)
            rows = copy_observations(conn, [(CAPILLARY, pat, t.ravel(), v)], n)
            # Stored as they arrived, not all just now (receipts look at what was ingested lately).
            conn.execute("UPDATE observation SET ingested_at = received_at + interval '3 seconds'")
        conn.execute("VACUUM ANALYZE")
        people = [
            (str(r[0]), str(r[1]))
            for r in conn.execute("SELECT id, 'gw-lat-' || substr(pseudonym, 7) FROM patient ORDER BY pseudonym")
        ]
        return people, rows


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


def evaluations(log_text: str) -> dict[str, tuple[list[int], list[float]]]:
    """(patients, elapsed ms) of each evaluation in the alerting log, by trigger."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for line in log_text.splitlines():
        if '"evaluated trigger=' not in line:
            continue
        msg = json.loads(line)["msg"]
        fields = dict(f.split("=", 1) for f in msg.split()[1:] if "=" in f)
        n, ms = out.setdefault(fields["trigger"], ([], []))
        n.append(int(fields["patients"]))
        ms.append(float(fields["elapsed_ms"]))
    return out


def sweep_chunks(log_text: str) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of each sweep chunk's evaluation, from the alerting log."""
    out = []
    for line in log_text.splitlines():
        if '"evaluated trigger=sweep' not in line:
            continue
        entry = json.loads(line)
        end = datetime.fromisoformat(entry["ts"]).timestamp()
        ms = float(entry["msg"].rsplit("elapsed_ms=", 1)[1])
        out.append((end - ms / 1e3, end))
    return out


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
    ap.add_argument("--history-days", type=float, default=28.0, help="days of twice-daily readings seeded")
    ap.add_argument("--startup-timeout", type=float, default=600.0, help="s to wait for the first sweep")
    a = ap.parse_args()
    if a.smoke:
        a.patients, a.rate, a.probes, a.probe_every, a.sweep_interval, a.sweep_chunk = 60, 5, 6, 0.5, 2.0, 20
        a.probe_timeout, a.history_days = 10.0, 3.0
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
        t_seed = time.perf_counter()
        people, history = seed(pg.url, a.patients, a.history_days)
        seed_s = time.perf_counter() - t_seed
        print(f"seeded {a.patients:,} patients, {history:,} readings of history in {seed_s:.1f} s")
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
        deadline = time.monotonic() + a.startup_timeout
        while "sweep done" not in alert_log.read_text():
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("services did not start:\n" + alert_log.read_text()[-2000:])
            time.sleep(0.1)
        time.sleep(1.0)  # ingest subscribed
        bg = threading.Thread(target=background, args=(broker.url, region, a.rate, stop), daemon=True)
        bg.start()
        time.sleep(min(5.0, a.probe_every * 2))
        # Probes go out on a fixed schedule, whether or not the earlier ones have their
        # finding yet: a probe stuck behind a sweep must not hold back the next one.
        sent: dict[str, float] = {}  # patient -> monotonic time sent
        seen: dict[str, tuple[float, float]] = {}  # patient -> (commit epoch, latency s)
        pub = Publisher(broker.url)
        with psycopg.connect(pg.url, autocommit=True) as conn:
            k = 0
            next_probe = time.monotonic()
            while k < len(probes) or any(
                p not in seen and time.monotonic() - t < a.probe_timeout for p, t in sent.items()
            ):
                if k < len(probes) and time.monotonic() >= next_probe:
                    pid, gw = probes[k]
                    sent[pid] = time.monotonic()
                    pub.publish(readings_topic(gw), [glucose(gw, 2.5, k)])
                    k += 1
                    next_probe += a.probe_every
                waiting = [p for p in sent if p not in seen]
                if waiting:
                    for pid, commit, lat in conn.execute(
                        "SELECT f.patient_id::text, extract(epoch FROM o.ingested_at), "
                        "extract(epoch FROM clock_timestamp() - o.ingested_at) FROM alert_finding f "
                        "JOIN observation o ON o.patient_id = f.patient_id AND o.kind = 'glucose_capillary' "
                        "AND o.value < 3.0 "
                        "WHERE f.patient_id = ANY(%s::uuid[]) AND f.rule_id = 'D4' AND f.severity = 'high'",
                        (waiting,),
                    ):
                        seen[pid] = (float(commit), float(lat))
                time.sleep(0.01)
        pub.close()
        chunks = sweep_chunks(alert_log.read_text())
        inside: list[float] = []
        outside: list[float] = []
        for commit, lat in seen.values():
            overlaps = any(lo < commit + lat and commit < hi for lo, hi in chunks)
            (inside if overlaps else outside).append(lat * 1e3)
        missed = len(probes) - len(seen)
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
        for trigger, (n, ms) in sorted(evaluations(alert_log.read_text()).items()):
            print(
                f"  {trigger:6s} evaluations {len(n):4d}: patients p50 {np.median(n):6.0f} max {max(n):6d}; "
                f"elapsed p50 {np.median(ms):8.1f} ms  p99 {np.percentile(ms, 99):8.1f} ms  max {max(ms):8.1f} ms"
            )
        left = sum(int(m) for m in re.findall(r"left_to_notify=(\d+)", alert_log.read_text()))
        print(f"  sweep batches left {left} patients to the notify path (evaluated after the sweep loaded them)")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
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
