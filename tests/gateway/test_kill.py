"""The gateway as a real process, SIGKILLed while publishing and restarted: nothing lost,
nothing duplicated in the database (virtual radio configured by a scenario file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.service import IngestService
from tests.gateway.helpers import CLIENT, SCANNER, Collector, wait_sync
from tests.ingest.helpers import count, seed_patient

ROOT = Path(__file__).parents[2]
N = 400
T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)


def _scenario(path: Path) -> Path:
    measurements = [
        {
            "systolic": 110 + i % 50,
            "diastolic": 70 + i % 15,
            "pulse": 55 + i % 40,
            "at": (T0 + timedelta(minutes=i)).isoformat(),
        }
        for i in range(N)
    ]
    path.write_text(json.dumps({"devices": [{"type": "blood_pressure", "measurements": measurements}]}))
    return path


@pytest.fixture
def gateway_process(tmp_path: Path, mqtt_url: str) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    scenario = _scenario(tmp_path / "scenario.json")

    def start(gateway_id: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EGENMON_SIM_BLE_SCENARIO": str(scenario),
            "EGENMON_GATEWAY_GATEWAY_ID": gateway_id,
            "EGENMON_GATEWAY_STATE_DIR": str(tmp_path / "state"),
            "EGENMON_GATEWAY_MQTT_URL": mqtt_url,
            "EGENMON_GATEWAY_BLE_SCANNER_BACKEND": SCANNER,
            "EGENMON_GATEWAY_BLE_CLIENT_BACKEND": CLIENT,
            "EGENMON_GATEWAY_BLE_IDLE_TIMEOUT_S": "0.5",
            "EGENMON_GATEWAY_AUTO_ACCEPT": "true",
            "EGENMON_GATEWAY_BATCH_MAX_READINGS": "10",
            "EGENMON_GATEWAY_MAX_INFLIGHT_BATCHES": "2",
            "EGENMON_GATEWAY_HEARTBEAT_S": "0.5",
        }
        log = (tmp_path / f"gateway-{len(procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run"], cwd=ROOT, env=env, stdout=log, stderr=log)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.mark.slow
def test_sigkill_while_publishing_loses_and_duplicates_nothing(
    gateway_process: Callable[[str], subprocess.Popen[bytes]],
    mqtt_url: str,
    db: psycopg.Connection[Any],
    ingest_worker: Callable[..., IngestService],
    tmp_path: Path,
) -> None:
    gw_id = "gw-kill-1"
    seed_patient(db, gateway_id=gw_id)
    ingest_worker()
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings", f"egenmon/v1/gw/{gw_id}/status"])
    try:
        first = gateway_process(gw_id)
        wait_sync(lambda: len(collector.batches()) >= 3, limit_s=30, what="publishing under way")
        first.send_signal(signal.SIGKILL)
        first.wait()
        # The broker sends the last will for the killed process: the platform sees "offline".
        wait_sync(lambda: collector.payloads("/status")[-1:] == [b"offline"], what="last will")
        published_before = len(collector.readings())
        assert published_before < N, "killed too late to test anything"
        # The restarted process has a fresh radio: the cuff sends all N again (resends).
        second = gateway_process(gw_id)

        def stored() -> int:
            return count(db, "SELECT count(DISTINCT reading_id) FROM observation WHERE gateway_id = %s", gw_id)

        wait_sync(lambda: stored() >= N, limit_s=60, what=f"{N} readings in the database")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
        # Nothing duplicated: one row per reading and component (4 components of a BP reading).
        assert count(db, "SELECT count(*) FROM observation WHERE gateway_id = %s", gw_id) == N * 4
        expected = {T0 + timedelta(minutes=i) for i in range(N)}
        got = {r[0] for r in db.execute("SELECT DISTINCT measured_at FROM observation WHERE gateway_id = %s", (gw_id,))}
        assert got == expected
        # Over MQTT a reading may be sent twice only as part of an identical resent batch.
        by_seq: dict[int, list[str]] = {}
        for b in collector.batches():
            ids = [r["reading_id"] for r in b["readings"]]
            assert by_seq.setdefault(b["seq"], ids) == ids
        all_ids = [i for ids in by_seq.values() for i in ids]
        assert len(all_ids) == len(set(all_ids)) == N
    finally:
        collector.close()
