"""Ingest throughput, end to end: publisher -> Mosquitto -> ingest -> committed rows.

Starts its own local stack (a throwaway PostgreSQL cluster and Mosquitto), runs
``python -m ingest run`` as a subprocess and measures, from the first publish to the
moment ingest has committed the last reading:

* messages of 1 reading each,
* messages of 100 readings each,

* and, as the reference, a raw binary COPY of the same rows straight into the same schema
  (a database of its own, run before and after the end-to-end runs; the faster counts).

Usage: ``python benchmarks/bench_ingest.py [--smoke] [--trials N] [--ingest-processes N]``.
PostgreSQL runs durable (fsync on) unless BENCH_DURABLE=0.
Targets: batched >= 60 % of the raw COPY rate with one ingest process on plain PostgreSQL
(issue 16; it was >= 50 % in issue 2); 1-reading messages >= 5,000/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402
from fleet_publisher import FleetPublisher  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from deploy.localstack import LocalMosquitto, LocalPostgres, free_port_range, wait_for_port  # noqa: E402
from device_profiles.vocabulary import COMPONENTS, Kind  # noqa: E402
from device_profiles.wire import DeviceInfo, Reading, ReadingBatch, Value, reading_id, readings_topic  # noqa: E402
from ingest.copy_binary import OBS_COLUMNS, RAW_COLUMNS, SIGNATURE, TRAILER, encode_rows  # noqa: E402
from ingest.pipeline import PreparedReading  # noqa: E402
from ingest.store import weight_check_sql  # noqa: E402
from schema.migrate import migrate  # noqa: E402
from schema.notify import NEW_READINGS_CHANNEL  # noqa: E402

# The weight check as it was before the literal batch bounds (the reference of
# weight_check_trials): the same statement without its constant time window.

MIX: list[tuple[Kind, dict[str, float]]] = [
    (Kind.BLOOD_PRESSURE, {"systolic": 131, "diastolic": 84, "mean_arterial": 99, "pulse": 71}),
    (Kind.GLUCOSE_CGM, {"glucose_interstitial": 6.8}),
    (Kind.GLUCOSE_CAPILLARY, {"glucose": 7.4}),
    (Kind.SPO2, {"spo2": 95, "pulse": 74}),
    (Kind.TEMPERATURE, {"temperature": 36.8}),
    (Kind.WEIGHT, {"weight": 78.2, "bmi": 25.3}),
]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_readings(n: int, gateways: list[str], tag: str) -> list[tuple[str, Reading]]:
    out = []
    for i in range(n):
        gw = gateways[i % len(gateways)]
        k = (i // len(gateways)) % len(MIX)
        kind, values = MIX[k]
        serial = f"{tag}-{gw}-{kind.value}"
        measured = T0 + timedelta(seconds=30 * i)
        out.append(
            (
                gw,
                Reading(
                    reading_id=reading_id(serial, kind, i),
                    # One device per kind per home, as in a real fleet.
                    device=DeviceInfo(address=f"AA:{i % len(gateways):04X}:{k:02X}", model="bench", serial=serial),
                    kind=kind,
                    measured_at=measured,
                    received_at=measured + timedelta(seconds=1),
                    values={k: Value(value=v, unit=COMPONENTS[k].unit) for k, v in values.items()},
                    raw="AAECAwQFBgc=",
                ),
            )
        )
    return out


def payloads(readings: list[tuple[str, Reading]], per_message: int) -> list[tuple[str, bytes]]:
    by_gw: dict[str, list[Reading]] = {}
    for gw, r in readings:
        by_gw.setdefault(gw, []).append(r)
    out = []
    now = datetime.now(UTC)
    for gw, rs in by_gw.items():
        for seq, i in enumerate(range(0, len(rs), per_message)):
            batch = ReadingBatch(gateway_id=gw, seq=seq, sent_at=now, readings=rs[i : i + per_message])
            out.append((readings_topic(gw), batch.to_json_bytes()))
    # Interleave gateways as a fleet would.
    out.sort(key=lambda tp: hash(tp[1]))
    return out


class Ingest:
    """``python -m ingest run`` with ``processes`` workers; counters summed over them."""

    def __init__(self, database_url: str, mqtt_url: str, log_path: Path, processes: int, root: Path = ROOT) -> None:
        first = free_port_range(processes)
        self.ports = list(range(first, first + processes))
        env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "DATABASE_URL": database_url,
            "MQTT_URL": mqtt_url,
            "EGENMON_INGEST_CLIENT_ID": "bench-ingest",
            "EGENMON_INGEST_METRICS_PORT": str(first),
            "EGENMON_INGEST_PROCESSES": str(processes),
            "EGENMON_INGEST_LOG_LEVEL": "WARNING",
        }
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "run"], cwd=root, env=env, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + 30
        for port in self.ports:
            wait_for_port(port, timeout_s=30)
            while not all(self._get(port, "/healthz", json_=True).values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("ingest did not become healthy")
                time.sleep(0.05)

    @property
    def pids(self) -> list[int]:
        """The ingest process and, with processes > 1, its workers."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [self.proc.pid, *map(int, children)]

    def _get(self, port: int, path: str, json_: bool = False) -> Any:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                body = resp.read()
        except urllib.error.HTTPError as err:
            body = err.read()
        return json.loads(body) if json_ else body.decode()

    def _sum(self, *names: str) -> dict[str, float]:
        values = dict.fromkeys(names, 0.0)
        for port in self.ports:
            for line in self._get(port, "/metrics").splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in values:
                    values[name] += float(line.rsplit(" ", 1)[1])
        return values

    def committed(self) -> float:
        return sum(
            self._sum("egenmon_ingest_readings_stored_total", "egenmon_ingest_readings_duplicate_total").values()
        )

    def batch_stats(self) -> str:
        values = self._sum(
            "egenmon_ingest_batch_messages_sum",
            "egenmon_ingest_batch_messages_count",
            "egenmon_ingest_commit_seconds_sum",
        )
        n = values["egenmon_ingest_batch_messages_count"] or 1.0
        return (
            f"{n:.0f} transactions, {values['egenmon_ingest_batch_messages_sum'] / n:.0f} messages"
            f" and {1000 * values['egenmon_ingest_commit_seconds_sum'] / n:.1f} ms each on average"
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=40)
        self._log.close()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that ended meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each group of processes used since the previous lap."""

    def __init__(self, **groups: list[int]) -> None:
        self.groups = groups
        self._last = {name: cpu_seconds(pids) for name, pids in groups.items()}

    def lap(self) -> str:
        now = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        used = {name: now[name] - self._last[name] for name in now}
        self._last = now
        # The publisher is this process (paho's thread and the LISTEN wait included).
        return ", ".join(f"{name} {secs:.2f} s" for name, secs in used.items())


def postgres_pids(pg: LocalPostgres) -> list[int]:
    """The postmaster and its children (backends, checkpointer, WAL writer...)."""
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def publish(mqtt_url: str, msgs: list[tuple[str, bytes]], *, paho: bool) -> None:
    """Publish every message at QoS 1 and return once the broker acknowledged them all."""
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    client_id = f"bench-pub-{uuid.uuid4().hex[:6]}"
    if not paho:
        fleet = FleetPublisher(host, int(port), client_id)
        try:
            fleet.publish_all(msgs)
        finally:
            fleet.close()
        return
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(0)  # unlimited: the broker config allows it too
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in msgs]
        for info in infos:
            info.wait_for_publish(timeout=600)
    finally:
        client.disconnect()
        client.loop_stop()


def run_end_to_end(
    ingest: Ingest, database_url: str, mqtt_url: str, msgs: list[tuple[str, bytes]], n_readings: int, *, paho: bool
) -> float:
    """Seconds from the first publish until ingest has committed all ``n_readings``.

    Ingest's metrics are read when a commit notifies (and at least every 0.2 s), not in a
    tight loop: scraping /metrics costs the measured process CPU.
    """
    before = ingest.committed()
    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute(f"LISTEN {NEW_READINGS_CHANNEL}")
    try:
        start = time.perf_counter()
        publish(mqtt_url, msgs, paho=paho)
        published = time.perf_counter() - start
        while ingest.committed() - before < n_readings:
            if time.perf_counter() - start > 600:
                raise RuntimeError("ingest did not keep up within 10 minutes")
            for _ in listener.notifies(timeout=0.2, stop_after=1):
                pass
        elapsed = time.perf_counter() - start
        print(f"  ({len(msgs)} messages: broker had all at {published:.2f} s, ingest committed at {elapsed:.2f} s)")
    finally:
        listener.close()
    return elapsed


def run_raw_copy(
    database_url: str, readings: list[tuple[str, Reading]], patients: dict[str, uuid.UUID]
) -> tuple[float, float]:
    """The same rows, binary COPY straight into observation and reading_raw, one transaction.

    The COPY data is encoded before the clock starts: only PostgreSQL taking the bytes is
    timed, the fastest this schema can store these rows. Returns the seconds and the CPU
    seconds PostgreSQL's backend used.
    """
    now = datetime.now(UTC)
    resolved = [
        (
            PreparedReading(gw, readings_topic(gw), 0, r, "valid", None, None, now, r.measured_at, r.received_at),
            patients[gw],
        )
        for gw, r in readings
    ]
    raw = bytearray(SIGNATURE)
    obs = b"".join(encode_rows(resolved, raw))
    raw += TRAILER
    with psycopg.connect(database_url) as conn:
        conn.execute("TRUNCATE observation, reading_raw")
        conn.commit()
        checkpoint(database_url)
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert backend is not None
        cpu_before = cpu_seconds([backend[0]])
        start = time.perf_counter()
        with conn.cursor() as cur:
            for table, columns, data in (("observation", OBS_COLUMNS, obs), ("reading_raw", RAW_COLUMNS, bytes(raw))):
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(data)
        conn.commit()
        return time.perf_counter() - start, cpu_seconds([backend[0]]) - cpu_before


def checkpoint(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def seed(database_url: str, n_gateways: int) -> dict[str, uuid.UUID]:
    patients: dict[str, uuid.UUID] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        unit = conn.execute("INSERT INTO care_unit (code, name) VALUES ('bench', 'Bench') RETURNING id").fetchone()
        assert unit
        for i in range(n_gateways):
            gw = f"gw-bench-{i:04d}"
            p = conn.execute(
                "INSERT INTO patient (pseudonym, display_name, unit_id) VALUES (%s, 'Bench', %s) RETURNING id",
                (f"B{i:05d}", unit[0]),
            ).fetchone()
            assert p
            conn.execute("INSERT INTO gateway (id) VALUES (%s)", (gw,))
            conn.execute(
                "INSERT INTO gateway_assignment (gateway_id, patient_id, valid)"
                " VALUES (%s, %s, tstzrange('2020-01-01', NULL))",
                (gw, p[0]),
            )
            patients[gw] = p[0]
    return patients


def weight_check_trials(database_url: str, reps: int) -> None:
    """The weight check of one batch against the stored rows, with and without the literal
    bounds, interleaved ``reps`` times; prints the medians (ms) for a 100-reading and a
    10,000-reading batch (the weights among them: 1 in 6 readings of the mix)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT reading_id, patient_id, measured_at + interval '1 day', value FROM observation"
            " WHERE component = 'weight' ORDER BY measured_at DESC LIMIT 1667"
        ).fetchall()
        if not rows:
            return
        for readings in (100, 10_000):
            weights = rows[: max(1, readings // 6)]
            params = {
                "ids": [r[0] for r in weights],
                "patients": [r[1] for r in weights],
                "at": [r[2] for r in weights],
                "kg": [r[3] + 6.0 for r in weights],
                "max_change": 5.0,
            }
            bounded = weight_check_sql(params["at"])
            unbounded = weight_check_sql(params["at"], bounded=False)
            times: dict[str, list[float]] = {"without bounds": [], "with bounds": []}
            for rep in range(reps):
                pair = [("without bounds", unbounded), ("with bounds", bounded)]
                for name, query in pair if rep % 2 else pair[::-1]:
                    start = time.perf_counter()
                    found = conn.execute(query, params, prepare=False).fetchall()
                    times[name].append(1000 * (time.perf_counter() - start))
                    assert len(found) == len(weights), (name, len(found))
            print(
                f"weight check, {readings:>6} readings ({len(weights)} weights), median of {reps}:"
                + "".join(f" {name} {statistics.median(t):.2f} ms;" for name, t in times.items())
            )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Trial:
    single_s: float
    batched_s: float
    copy_s: float  # the faster of the COPYs just before and just after
    copy_cpu_s: float  # PostgreSQL's CPU for that COPY
    cpu_single: str
    cpu_batched: str


def run_trial(
    number: int,
    args: argparse.Namespace,
    ingest: Ingest,
    urls: tuple[str, str, str],
    patients: dict[str, uuid.UUID],
    meter: CpuMeter,
) -> Trial:
    db_url, copy_url, mqtt_url = urls
    gateways = sorted(patients)
    # Fresh readings every trial: ingest must store each one, not find it a duplicate.
    single = make_readings(args.single, gateways, f"s{number}")
    batched = make_readings(args.batched, gateways, f"b{number}")
    single_msgs, batched_msgs = payloads(single, 1), payloads(batched, 100)
    # Both sides start from empty tables and a fresh checkpoint, so neither pays for a larger
    # index or for a checkpoint that the other side's writes brought on.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE observation, reading_raw")
    copy_before = run_raw_copy(copy_url, batched, patients)
    checkpoint(db_url)
    meter.lap()
    single_s = run_end_to_end(ingest, db_url, mqtt_url, single_msgs, len(single), paho=args.paho_publisher)
    cpu_single = meter.lap()
    batched_s = run_end_to_end(ingest, db_url, mqtt_url, batched_msgs, len(batched), paho=args.paho_publisher)
    cpu_batched = meter.lap()
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM reading_raw").fetchone()
    if row is None or row[0] != len(single) + len(batched):
        raise SystemExit(
            f"trial {number + 1}: stored {row and row[0]} readings, published {len(single) + len(batched)}"
        )
    copy_after = run_raw_copy(copy_url, batched, patients)
    copy_s, copy_cpu_s = min(copy_before, copy_after)
    return Trial(single_s, batched_s, copy_s, copy_cpu_s, cpu_single, cpu_batched)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny run, to check that the benchmark works")
    ap.add_argument("--single", type=int, default=20_000, help="readings sent as 1-reading messages")
    ap.add_argument("--batched", type=int, default=200_000, help="readings sent as 100-reading messages")
    ap.add_argument("--gateways", type=int, default=50)
    ap.add_argument("--trials", type=int, default=3, help="interleaved repetitions; the medians are the result")
    ap.add_argument(
        "--paho-publisher",
        action="store_true",
        help="publish through paho (costs this machine ~0.1 ms of CPU per message) instead of the lean fleet publisher",
    )
    ap.add_argument(
        "--ingest-processes",
        type=int,
        default=2,
        help="EGENMON_INGEST_PROCESSES: worker processes on the shared subscription (1: a single worker)",
    )
    ap.add_argument(
        "--ingest-root",
        type=Path,
        default=ROOT,
        help="run the ingest of another source tree (e.g. a git worktree of an older commit), for before/after",
    )
    args = ap.parse_args()
    if args.smoke:
        args.single, args.batched, args.gateways, args.trials = 300, 2_000, 5, 1

    load_start = _load()
    base = Path(tempfile.mkdtemp(prefix="egenmon-bench-"))
    # LocalPostgres opens its own base directory to the postgres user (when run as root).
    pg = LocalPostgres(base, durable=os.environ.get("BENCH_DURABLE", "1") == "1")
    mqtt_base = Path(tempfile.mkdtemp(prefix="egenmon-bench-mqtt-"))
    broker = LocalMosquitto(mqtt_base)
    ingest: Ingest | None = None
    try:
        pg.start()
        broker.start()
        mode = migrate(pg.url)
        patients = seed(pg.url, args.gateways)
        # The reference runs in a database of its own with the same schema, just before and
        # just after each trial's end-to-end runs; the faster of the two counts (the
        # conservative ratio on a machine whose load changes).
        copy_url = pg.url.rsplit("/", 1)[0] + "/egenmon_copy"
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE egenmon_copy")
        migrate(copy_url)

        ingest = Ingest(pg.url, broker.url, mqtt_base / "ingest.log", args.ingest_processes, args.ingest_root)
        assert broker.process is not None
        meter = CpuMeter(
            ingest=ingest.pids,
            postgresql=postgres_pids(pg),
            mosquitto=[broker.process.pid],
            publisher=[os.getpid()],
        )
        trials = []
        for n in range(args.trials):
            trial = run_trial(n, args, ingest, (pg.url, copy_url, broker.url), patients, meter)
            trials.append(trial)
            print(f"  (trial {n + 1}: 1-reading run CPU: {trial.cpu_single})")
            print(
                f"  (trial {n + 1}: batched run CPU: {trial.cpu_batched};"
                f" raw COPY: postgresql {trial.copy_cpu_s:.2f} s)"
            )
        print(f"  (ingest: {ingest.batch_stats()})")
        ingest.stop()
        ingest = None
        # Ingest logs at WARNING here: anything in its log (a retry, a dead letter) is news.
        warnings = (mqtt_base / "ingest.log").read_text().splitlines()
        print(f"  (ingest logged {len(warnings)} warnings{': ' if warnings else ''}{' | '.join(warnings[:3])[:600]})")
        report(args, mode, load_start, trials)
        weight_check_trials(pg.url, 5 if args.smoke else 30)
    finally:
        if ingest is not None:
            ingest.stop()
        broker.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(mqtt_base, ignore_errors=True)


def report(args: argparse.Namespace, mode: str, load_start: str, trials: list[Trial]) -> None:
    rates = [
        (args.single / t.single_s, args.batched / t.batched_s, args.batched / t.copy_s, t.copy_s / t.batched_s)
        for t in trials
    ]
    rows_per_reading = sum(len(values) for _, values in MIX) / len(MIX)
    print(
        f"ingest benchmark (storage: {mode}; {rows_per_reading:.2f} observation rows per reading;"
        f" {args.ingest_processes} ingest process{'es' if args.ingest_processes > 1 else ''}; {len(trials)} trials)"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {load_start} at the start, {_load()} at the end")
    print("trial  1 reading/msg  100 readings/msg  raw COPY    batched/COPY")
    for n, (single, batched, copy, ratio) in enumerate(rates, 1):
        print(f"{n:>5} {single:>12,.0f}/s {batched:>15,.0f}/s {copy:>9,.0f}/s {100 * ratio:>9.0f} %")
    single, batched, copy, ratio = (statistics.median(col) for col in zip(*rates, strict=True))
    print("medians:")
    print(f"1 reading/message:    {args.single:>8} readings per trial, {single:10.0f} readings/s")
    print(f"100 readings/message: {args.batched:>8} readings per trial, {batched:10.0f} readings/s")
    print(f"raw binary COPY:      {args.batched:>8} readings per trial, {copy:10.0f} readings/s")
    print(f"batched / raw COPY:   {100 * ratio:.0f} % (target >= 60 %)")
    print(f"1-reading messages:   {single:.0f} readings/s (target >= 5000)")


if __name__ == "__main__":
    main()
