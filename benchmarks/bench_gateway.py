"""Gateway footprint: resident memory and CPU time per 1,000 readings, end to end.

Runs ``python -m gateway run`` as its own process over the simulated BLE radio (a blood
pressure cuff holding N stored measurements, configured by a scenario file) against a real
Mosquitto, and waits until a subscriber has all N readings. Everything the gateway does
per reading is included: GATT decode, reading build, the fsynced SQLite outbox insert,
batching, MQTT publish and the PUBACK-driven delete. The virtual radio runs inside the
gateway process, so its (small) cost is counted too. Startup (imports, connect) is
measured in a run without readings and subtracted.

Targets (issue 4): < 80 MB RSS, < 2 s CPU per 1,000 readings.

    python benchmarks/bench_gateway.py            # 5,000 readings
    python benchmarks/bench_gateway.py --smoke    # 200 readings, a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.localstack import LocalMosquitto  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_once(n: int, broker: LocalMosquitto, work: Path, gateway_id: str) -> tuple[float, float, float]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    measurements = [
        {
            "systolic": 110 + i % 60,
            "diastolic": 70 + i % 20,
            "pulse": 50 + i % 50,
            "at": (t0 + timedelta(minutes=i)).isoformat(),
        }
        for i in range(n)
    ]
    devices = [{"type": "blood_pressure", "measurements": measurements}] if n else []
    scenario = work / f"scenario-{gateway_id}.json"
    scenario.write_text(json.dumps({"devices": devices}))
    count = 0
    status_seen = threading.Event()
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        if msg.topic.endswith("/status"):
            if msg.payload.startswith(b"{"):
                status_seen.set()
            return
        count += len(json.loads(msg.payload)["readings"])
        if count >= n:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(f"egenmon/v1/gw/{gateway_id}/#", qos=1)
    sub.loop_start()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EGENMON_SIM_BLE_SCENARIO": str(scenario),
        "EGENMON_GATEWAY_GATEWAY_ID": gateway_id,
        "EGENMON_GATEWAY_STATE_DIR": str(work / gateway_id),
        "EGENMON_GATEWAY_MQTT_URL": broker.url,
        "EGENMON_GATEWAY_BLE_SCANNER_BACKEND": "simulators.ble.backend:VirtualScanner",
        "EGENMON_GATEWAY_BLE_CLIENT_BACKEND": "simulators.ble.backend:VirtualClient",
        "EGENMON_GATEWAY_BLE_IDLE_TIMEOUT_S": "0.5",
        "EGENMON_GATEWAY_AUTO_ACCEPT": "true",
        "EGENMON_GATEWAY_HEARTBEAT_S": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        start = time.monotonic()
        if n:
            if not done.wait(600):
                raise SystemExit(f"only {count} of {n} readings arrived")
        elif not status_seen.wait(60):
            raise SystemExit("the gateway never reported its status")
        wall = time.monotonic() - start
        cpu, rss = cpu_seconds(proc.pid), peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        sub.disconnect()
        sub.loop_stop()
    return cpu, rss, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("-n", type=int, default=None, help="readings (default 5000, smoke 200)")
    args = parser.parse_args()
    n = args.n or (200 if args.smoke else 5000)
    work = Path(tempfile.mkdtemp(prefix="egenmon-bench-gw-"))
    broker = LocalMosquitto(work / "broker")
    broker.start()
    try:
        base_cpu, base_rss, _ = run_once(0, broker, work, "gw-bench-idle")
        cpu, rss, wall = run_once(n, broker, work, "gw-bench-load")
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    per_1000 = (cpu - base_cpu) / n * 1000
    print(f"readings: {n}")
    print(f"wall_s: {wall:.2f}  ({n / wall:.0f} readings/s)")
    print(f"startup_cpu_s: {base_cpu:.2f}  startup_peak_rss_mb: {base_rss:.1f}")
    print(f"cpu_s_total: {cpu:.2f}")
    print(f"cpu_s_per_1000_readings: {per_1000:.3f}  (target < 2)")
    print(f"peak_rss_mb: {rss:.1f}  (target < 80)")


if __name__ == "__main__":
    main()
