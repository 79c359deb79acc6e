"""Partitioned alerting workers: each patient is evaluated by exactly one worker, and a
surviving worker takes over the partitions of one that died (PostgreSQL advisory locks)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerting.partitions import PartitionOwner, partition_of
from schema.notify import NEW_READINGS_CHANNEL
from tests.alerting.dbdata import STAFF_LOWS, add_observation, make_patient
from tests.alerting.helpers import MIN
from tests.ingest.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
SWEEP = re.compile(r"sweep done patients=(\d+) partitions=([\d,]+|-)")


def test_partition_of_is_stable_and_spreads_patients() -> None:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(4000)]
    parts = [partition_of(p, PARTITIONS) for p in ids]
    assert parts == [partition_of(p, PARTITIONS) for p in ids]
    assert partition_of(ids[0], PARTITIONS) == partition_of(ids[0].upper(), PARTITIONS)
    counts = Counter(parts)
    assert sorted(counts) == list(range(PARTITIONS))
    assert min(counts.values()) > 800  # 1,000 each on average
    assert {partition_of(p, 1) for p in ids} == {0}


def test_owners_share_the_partitions_and_take_over(database_url: str) -> None:
    a, b = PartitionOwner(database_url, PARTITIONS), PartitionOwner(database_url, PARTITIONS)
    try:
        assert a.check() == (set(range(PARTITIONS)), set())  # alone: everything
        assert b.check() == (set(), set())  # all held: nothing yet
        gained, lost = a.check()  # two workers now: a gives up the surplus
        assert gained == set()
        assert lost == {2, 3}
        assert b.check() == ({2, 3}, set())
        assert a.owned == {0, 1}
        assert b.owned == {2, 3}
        assert a.leads
        assert not b.leads
        ids = [str(uuid.uuid4()) for _ in range(200)]
        assert sorted(a.mine(ids) + b.mine(ids)) == sorted(ids)
        assert not set(a.mine(ids)) & set(b.mine(ids))
        with b.use(ids) as mine:
            assert mine == b.mine(ids)
        assert a.check() == (set(), set())  # settled
    finally:
        b.close()  # b stops: its locks go with its session
    # The server ends b's backend after the client has closed: its locks may still show in
    # pg_locks for a moment (seen on TimescaleDB), so a takes over at a later check.
    deadline = time.monotonic() + 15
    while (taken := a.check()) == (set(), set()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert taken == ({2, 3}, set())
    assert a.owned == set(range(PARTITIONS))
    a.close()


def _start(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "EGENMON_ALERTING_METRICS_PORT": "0",
        "EGENMON_ALERTING_SWEEP_INTERVAL_S": "1",
        "EGENMON_ALERTING_PARTITIONS": str(PARTITIONS),
        "EGENMON_ALERTING_PARTITION_CHECK_S": "0.3",
        "EGENMON_ALERTING_REPLAY_POLL_S": "0",
    }
    with log.open("w") as err:
        return subprocess.Popen([sys.executable, "-m", "alerting", "run"], cwd=ROOT, env=env, stderr=err)


def _last_sweep(log: Path) -> tuple[int, frozenset[int]] | None:
    found = SWEEP.findall(log.read_text())
    if not found:
        return None
    n, parts = found[-1]
    return int(n), frozenset() if parts == "-" else frozenset(int(k) for k in parts.split(","))


@pytest.fixture
def two_workers(database_url: str, tmp_path: Path) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[Path]]]:
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    procs = [_start(database_url, log) for log in logs]
    try:
        yield procs, logs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=15)


@pytest.mark.slow
def test_two_alerting_processes_split_the_patients_and_one_takes_over(
    db: psycopg.Connection[Any], two_workers: tuple[list[subprocess.Popen[bytes]], list[Path]]
) -> None:
    procs, logs = two_workers
    now = time.time()
    pids = []
    for _ in range(24):
        pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
        add_observation(db, pid, "glucose_capillary", "glucose", now - MIN, 2.6)  # D4 high
        pids.append(pid)
    per_part = Counter(partition_of(p, PARTITIONS) for p in pids)

    def settled() -> tuple[tuple[int, frozenset[int]], tuple[int, frozenset[int]]] | None:
        for p, log in zip(procs, logs, strict=True):
            assert p.poll() is None, log.read_text()
        a, b = _last_sweep(logs[0]), _last_sweep(logs[1])
        if a is None or b is None or not a[1] or not b[1]:
            return None
        if a[1] & b[1] or a[1] | b[1] != set(range(PARTITIONS)):
            return None
        if (a[0], b[0]) != (sum(per_part[k] for k in a[1]), sum(per_part[k] for k in b[1])):
            return None  # a sweep from before the patients were added
        return a, b

    a, b = wait_until(settled, timeout_s=60)
    # Disjoint shares covering every partition, and each swept exactly its patients.
    assert a[0] + b[0] == len(pids)
    # Every patient's alert exists once, opened once (no two workers racing on it).
    wait_until(
        lambda: (
            db.execute("SELECT count(DISTINCT patient_id) FROM alert WHERE rule_id = 'D4'").fetchone() == (len(pids),)
        ),
        timeout_s=30,
    )
    opened = db.execute(
        "SELECT a.patient_id, count(*) FROM alert a JOIN alert_event e ON e.alert_id = a.id "
        "WHERE e.event = 'opened' GROUP BY 1"
    ).fetchall()
    assert len(opened) == len(pids)
    assert all(n == 1 for _, n in opened)
    # A notified patient is evaluated by its owner only.
    late = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    owner = 0 if partition_of(late, PARTITIONS) in a[1] else 1
    with db.transaction():
        add_observation(db, late, "glucose_capillary", "glucose", time.time() - MIN, 2.6)
        db.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, json.dumps({"patients": [late]})))
    wait_until(lambda: db.execute("SELECT 1 FROM alert WHERE patient_id = %s", (late,)).fetchone(), timeout_s=20)
    wait_until(lambda: "trigger=notify" in logs[owner].read_text(), timeout_s=10)
    assert "trigger=notify" not in logs[1 - owner].read_text()

    # Worker a dies without a word: its session ends, b takes its partitions and sweeps everyone.
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(timeout=10)
    total = len(pids) + 1

    def b_has_all() -> bool:
        assert procs[1].poll() is None, logs[1].read_text()
        last = _last_sweep(logs[1])
        return last == (total, frozenset(range(PARTITIONS)))

    wait_until(b_has_all, timeout_s=60)
    # And the notifications of a's former patients now reach b.
    former = next(p for p in pids if partition_of(p, PARTITIONS) in a[1])
    notified = logs[1].read_text().count("trigger=notify")
    with db.transaction():
        add_observation(db, former, "glucose_capillary", "glucose", time.time() - 10.0, 2.4)
        db.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, json.dumps({"patients": [former]})))
    wait_until(lambda: logs[1].read_text().count("trigger=notify") > notified, timeout_s=20)
