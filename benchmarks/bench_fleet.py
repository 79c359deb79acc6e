"""Fleet generator throughput: simulate a cohort and publish its history to a real broker.

    python benchmarks/bench_fleet.py                  # 2,000 gateways, 7 days of history
    python benchmarks/bench_fleet.py --gateways 5000 --days 14
    python benchmarks/bench_fleet.py --smoke          # tiny, for the test suite
    MQTT_URL=mqtt://host:1883 python benchmarks/bench_fleet.py   # an existing broker

Prints: cohort generation time, readings per second simulated, and published messages,
readings and megabytes per second (acknowledged by the broker with QoS 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.localstack import LocalMosquitto
from simulators.cohort import CohortConfig, generate_cohort
from simulators.fleet import Fleet, Publisher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=288)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
