"""The real gateway process SIGKILLed mid-transfer, three times, over every kind of virtual
device: those that forget a value once its indication is confirmed (no resend), those that
keep their memory and send it all again on every connection, and those without a clock (no
time stamp: resends have no reading id of their own). The devices keep their memory in
files (``EGENMON_SIM_BLE_STATE_DIR``), so like real devices they outlive the gateway.

Counted in the gateway's outbox (the broker is unreachable, so nothing leaves it): 0 lost
and 0 duplicated per device; then the same outbox is delivered through the real broker and
ingest and counted again in the database.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from device_profiles.gatt import Uuid
from device_profiles.session import DeviceSession
from ingest.service import IngestService
from simulators.ble.devices import GlucoseMeter
from simulators.ble.scenario import device_from_spec
from tests.gateway.helpers import CLIENT, SCANNER, wait_sync
from tests.ingest.helpers import count, seed_patient

ROOT = Path(__file__).parents[2]
T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
N = 30  # measurements per pushing device
GLUCOSE_MEASUREMENT = Uuid.GLUCOSE_MEASUREMENT
GLUCOSE_RECORDS = 60


def _bp(i: int, memory: str) -> dict[str, Any]:
    # A cuff that keeps its memory gets two equal readings (i = 3 and 4): without a time
    # stamp both must be kept, and its resent memory still recognised. (For a cuff that
    # forgets, equal readings on either side of a kill cannot be told from a resend by
    # their bytes: gateway/README.md, "Resends".)
    j = 3 if i == 4 and memory == "keep" else i
    return {"systolic": 110 + j, "diastolic": 70 + j % 15, "pulse": 55 + j % 30}


def _measure(kind: str, i: int, memory: str) -> dict[str, Any]:
    at = {"at": (T0 + timedelta(minutes=i)).isoformat()}
    if kind == "blood_pressure":
        return {**_bp(i, memory), **at}
    if kind == "weight":
        return {"weight_kg": 70 + i * 0.1, **at}
    if kind == "pulse_oximeter":
        return {"spo2_pct": 90 + i % 9, "pulse": 60 + i, **at}
    if kind == "thermometer":
        return {"celsius": 36.0 + i * 0.05, **at}
    if kind == "peak_flow":
        return {"pef_l_min": 300 + i, "fev1_l": 2.5, "fvc_l": 3.5, **at}
    raise AssertionError(kind)


# (type, memory, timestamps): every pushing device type in both memory modes, with and
# without a clock.
PUSHING = [
    (kind, memory, ts)
    for kind in ("blood_pressure", "weight", "pulse_oximeter", "thermometer", "peak_flow")
    for memory in ("forget", "keep")
    for ts in (True, False)
]


def _devices() -> list[dict[str, Any]]:
    devs: list[dict[str, Any]] = []
    for n, (kind, memory, ts) in enumerate(PUSHING, start=1):
        devs.append(
            {
                "type": kind,
                "address": f"F1:00:00:00:00:{n:02X}",
                "serial": f"KILL-{n:02d}",
                "memory": memory,
                "timestamps": ts,
                "measurements": [_measure(kind, i, memory) for i in range(N)],
            }
        )
    devs.append(
        {
            "type": "glucose",
            "address": "F1:00:00:00:01:00",
            "serial": "KILL-BG",
            "stored_records": {"count": GLUCOSE_RECORDS, "start": T0.isoformat(), "every_s": 600},
        }
    )
    return devs


def _identity(reading: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one measurement of a device from another (time, or the values)."""
    values = tuple(sorted((k, v["value"]) for k, v in reading["values"].items() if v.get("value") is not None))
    return (reading["device"]["address"], values)


def _expected() -> Counter[tuple[Any, ...]]:
    """Each device's measurements, decoded from the bytes the virtual devices will send."""
    want: Counter[tuple[Any, ...]] = Counter()
    for spec in _devices():
        dev = device_from_spec(spec)
        values = [(GLUCOSE_MEASUREMENT, r.data) for r in dev.records] if isinstance(dev, GlucoseMeter) else dev.pending
        for uuid, raw in values:
            for o in DeviceSession(dev.profile).feed(uuid, raw, received_at=datetime.now(UTC)):
                vals = tuple(sorted((k, m.value) for k, m in o.values.items() if m.value is not None))
                want[(spec["address"], vals)] += 1
    return want


def _outbox_readings(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=10)
    try:
        return [json.loads(b) for (b,) in con.execute("SELECT body FROM reading")]
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        con.close()


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[[str, str], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"devices": _devices()}))

    def start(gateway_id: str, mqtt_url: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EGENMON_SIM_BLE_SCENARIO": str(scenario),
            "EGENMON_SIM_BLE_STATE_DIR": str(tmp_path / "devices"),
            "EGENMON_GATEWAY_GATEWAY_ID": gateway_id,
            "EGENMON_GATEWAY_STATE_DIR": str(tmp_path / "state"),
            "EGENMON_GATEWAY_MQTT_URL": mqtt_url,
            "EGENMON_GATEWAY_BLE_SCANNER_BACKEND": SCANNER,
            "EGENMON_GATEWAY_BLE_CLIENT_BACKEND": CLIENT,
            "EGENMON_GATEWAY_BLE_IDLE_TIMEOUT_S": "0.5",
            "EGENMON_GATEWAY_BLE_COOLDOWN_S": "0.2",
            "EGENMON_GATEWAY_BLE_BACKOFF_BASE_S": "0.05",
            "EGENMON_GATEWAY_BLE_BACKOFF_CAP_S": "0.2",
            "EGENMON_GATEWAY_AUTO_ACCEPT": "true",
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


def _free_port_url() -> str:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"mqtt://127.0.0.1:{s.getsockname()[1]}"  # nobody listens: the outbox keeps all


@pytest.mark.slow
def test_sigkill_mid_transfer_every_device_type_loses_and_duplicates_nothing(
    gateway_process: Callable[[str, str], subprocess.Popen[bytes]],
    mqtt_url: str,
    db: psycopg.Connection[Any],
    ingest_worker: Callable[..., IngestService],
    tmp_path: Path,
) -> None:
    gw_id = "gw-kill-devices"
    outbox = tmp_path / "state" / "gateway.sqlite3"
    want = _expected()
    total = sum(want.values())
    assert total == len(PUSHING) * N + GLUCOSE_RECORDS
    dead_broker = _free_port_url()
    kills_mid_transfer = 0
    for fraction in (0.15, 0.4, 0.65):
        proc = gateway_process(gw_id, dead_broker)
        deadline = time.monotonic() + 60
        while len(_outbox_readings(outbox)) < fraction * total:
            assert proc.poll() is None, "gateway died by itself"
            assert time.monotonic() < deadline, "gateway made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if len(_outbox_readings(outbox)) < total:
            kills_mid_transfer += 1
    assert kills_mid_transfer == 3, "killed after the transfers were over: nothing tested"

    last = gateway_process(gw_id, dead_broker)
    deadline = time.monotonic() + 60
    while len(_outbox_readings(outbox)) < total and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # let any late resend arrive (it must be recognised, not added)
    last.send_signal(signal.SIGTERM)
    assert last.wait(timeout=20) == 0

    got = Counter(_identity(r) for r in _outbox_readings(outbox))
    assert got == want, f"lost {sorted(want - got)}, duplicated {sorted(got - want)}"
    # The devices agree: the forgetting ones hold nothing more to send.
    for n, (_kind, memory, _ts) in enumerate(PUSHING, start=1):
        state = json.loads((tmp_path / "devices" / f"F100000000{n:02X}.json").read_text())
        assert state["pending"] == [], f"device {n} still has unsent values"
        assert len(state["kept"]) == (N if memory == "keep" else 0)

    # Then through the real broker and ingest: the database holds each reading once.
    seed_patient(db, gateway_id=gw_id)
    ingest_worker()
    deliver = gateway_process(gw_id, mqtt_url)
    wait_sync(lambda: not _outbox_readings(outbox), limit_s=60, what="the outbox to drain")
    wait_sync(
        lambda: count(db, "SELECT count(DISTINCT reading_id) FROM observation WHERE gateway_id = %s", gw_id) >= total,
        limit_s=30,
        what="readings in the database",
    )
    deliver.send_signal(signal.SIGTERM)
    assert deliver.wait(timeout=20) == 0
    assert count(db, "SELECT count(DISTINCT reading_id) FROM observation WHERE gateway_id = %s", gw_id) == total
