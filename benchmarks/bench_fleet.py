"""Fleet generator throughput: simulate a cohort and publish its history to a real broker.

    python benchmarks/bench_fleet.py                  # 2,000 gateways, 7 days of history
    python benchmarks/bench_fleet.py --gateways 5000 --days 14
    python benchmarks/bench_fleet.py --smoke          # tiny, for the test suite
    MQTT_URL=mqtt://host:1883 python benchmarks/bench_fleet.py   # an existing broker
    python benchmarks/bench_fleet.py --score --gateways 50 --days 45   # score the real engine

Prints: cohort generation time, readings per second simulated, and published messages,
readings and megabytes per second (acknowledged by the broker with QoS 1).

``--score`` drives the whole platform instead: a throwaway PostgreSQL and broker, the
cohort seeded, the real ingest worker consuming the published history, then the real
alerting engine replayed over it at hourly historical times (staff acting on resolution
suggestions between evaluations), and the alerts scored against the labelled episodes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from alerting.service import evaluate_and_store
from deploy.localstack import LocalMosquitto, LocalPostgres
from schema.migrate import migrate
from simulators.cohort import CohortConfig, generate_cohort
from simulators.fleet import Fleet, Publisher
from simulators.scoring import format_rows, load_alerts, score
from simulators.seed import seed_database

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=288)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--score", action="store_true", help="run ingest and alerting, replay, score")
    parser.add_argument("--step-hours", type=float, default=1.0, help="--score: evaluation interval")
    args = parser.parse_args()
    if args.score:
        if args.smoke:
            args.gateways, args.days, args.step_hours = 8, 14, 6.0
        score_engine(args.gateways, args.days, args.step_hours)
        return
    if args.smoke:
        args.gateways, args.days = 20, 1

    base = None
    broker = None
    url = os.environ.get("MQTT_URL")
    if not url:
        base = Path(tempfile.mkdtemp(prefix="egenmon-bench-"))
        broker = LocalMosquitto(base)
        broker.start()
        url = broker.url
    try:
        t0 = time.perf_counter()
        cohort = generate_cohort(CohortConfig(args.gateways, seed=1, days=args.days, gateway_prefix="bench"))
        n_sim = sum(cohort.series(p).n_readings() for p in cohort.patients[: min(50, args.gateways)])
        t_gen = time.perf_counter() - t0
        per_patient = n_sim / min(50, args.gateways)
        print(f"cohort: {args.gateways} gateways, {args.days} days; simulating 50 patients took {t_gen:.2f} s")
        print(f"simulated readings per patient-day: {per_patient / args.days:.0f}")

        publisher = Publisher(url)
        publisher.connect()
        try:
            fleet = Fleet(cohort, publisher, batch_size=args.batch_size)
            stats = fleet.backfill(cohort.config.start + timedelta(days=args.days))
        finally:
            publisher.close()
        print(f"published: {stats.messages} messages, {stats.readings} readings, {stats.bytes / 1e6:.1f} MB")
        print(f"elapsed: {stats.seconds:.2f} s (simulation + encoding + QoS 1 publish)")
        print(
            f"throughput: {stats.messages / stats.seconds:.0f} messages/s, {stats.readings_per_s:.0f} readings/s, "
            f"{stats.bytes / 1e6 / stats.seconds:.1f} MB/s"
        )
    finally:
        if broker:
            broker.stop()
        if base:
            shutil.rmtree(base, ignore_errors=True)


def score_engine(n: int, days: int, step_h: float) -> None:
    base = Path(tempfile.mkdtemp(prefix="egenmon-score-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    pg = LocalPostgres(base / "pg", durable=False)
    broker = LocalMosquitto(base / "mqtt")
    ingest = None
    try:
        pg.start()
        broker.start()
        migrate(pg.url)
        cohort = generate_cohort(CohortConfig(n, seed=1, days=days))
        seed_database(pg.url, cohort)
        env = {
            **os.environ,
            "DATABASE_URL": pg.url,
            "MQTT_URL": broker.url,
            "PYTHONPATH": str(ROOT),
            "EGENMON_INGEST_METRICS_PORT": "0",
            "EGENMON_INGEST_LOG_LEVEL": "WARNING",
        }
        log = (base / "ingest.log").open("wb")
        ingest = subprocess.Popen([sys.executable, "-m", "ingest", "run"], cwd=ROOT, env=env, stdout=log, stderr=log)
        time.sleep(3)  # let the worker subscribe before anything is published
        publisher = Publisher(broker.url)
        publisher.connect()
        try:
            stats = Fleet(cohort, publisher).backfill(cohort.config.start + timedelta(days=days))
        finally:
            publisher.close()
        deadline = time.monotonic() + 300
        stored = 0
        while time.monotonic() < deadline:
            with psycopg.connect(pg.url) as conn:
                row = conn.execute("SELECT count(DISTINCT reading_id) FROM observation").fetchone()
            stored = int(row[0]) if row else 0
            if stored >= 0.95 * stats.readings:  # duplicate resends share an id
                break
            time.sleep(1)
        print(f"published {stats.readings} readings, ingest stored {stored}")
        t0 = time.perf_counter()
        t = cohort.config.start.timestamp() + 86_400
        steps = 0
        with psycopg.connect(pg.url, autocommit=True) as conn:
            while t <= cohort.config.start.timestamp() + days * 86_400:
                evaluate_and_store(conn, None, now=t, trigger="replay")
                # Staff act on the platform's resolution suggestions before the next evaluation.
                conn.execute(
                    "UPDATE alert SET status = 'resolved', resolved_at = to_timestamp(%s)"
                    " WHERE status <> 'resolved' AND resolution_suggested_at IS NOT NULL",
                    (t,),
                )
                t += step_h * 3600
                steps += 1
        print(f"replayed {steps} evaluations every {step_h:g} h in {time.perf_counter() - t0:.1f} s")
        enrolled = {p.pseudonym: p.conditions for p in cohort.patients}
        rows = score(load_alerts(pg.url), cohort.episodes(), enrolled, days, ignore_rules=frozenset({"NODATA"}))
        for cells in format_rows(rows):
            print(" | ".join(cells))
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(timeout=30)
        broker.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
