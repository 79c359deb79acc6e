"""What a broker crash loses of readings Mosquitto has already acknowledged.

Mosquitto sends PUBACK for a QoS 1 message as soon as it holds it in memory; it writes
its state to disk only at an autosave (or a clean shutdown). The gateway deletes a batch
from its outbox on that PUBACK (gateway/README.md), so whatever the broker had queued for
ingest's persistent session but not yet saved is gone if the broker dies uncleanly
(SIGKILL, OOM killer, power cut).

Each run: a persistent "ingest" session subscribes at QoS 1 and goes away (ingest lagging
or down); a publisher sends N messages at QoS 1 and waits for every PUBACK; after
--wait-s the broker is SIGKILLed and restarted on the same persistence file; the session
reconnects and counts what the broker still delivers. Also printed: publish rate (an
autosave rewrites the whole persistence file, so saving often costs throughput when a
long queue builds up) and the size of that file.

    python benchmarks/bench_broker_durability.py                    # every variant below
    python benchmarks/bench_broker_durability.py --variant deploy   # deploy/mosquitto/mosquitto.conf's lines
    python benchmarks/bench_broker_durability.py --smoke            # CI: small N
"""

from __future__ import annotations

import argparse
import getpass
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from deploy.localstack import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "egenmon/v1/gw/gw-bench/readings"
SESSION = "egenmon-ingest-bench"
PAYLOAD = b"x" * 400  # a gateway's batch of one reading is 320-460 bytes of JSON

# name -> persistence lines (the rest of the config is fixed)
VARIANTS: dict[str, list[str]] = {
    "interval-60 (old deploy)": ["autosave_interval 60"],
    "interval-5 (old local stack)": ["autosave_interval 5"],
    "interval-1": ["autosave_interval 1"],
    "every-change": ["autosave_on_changes true", "autosave_interval 1"],
}


def deploy_lines() -> list[str]:
    text = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    return re.findall(r"^autosave_\w+ .+$", text, flags=re.M)


def write_config(base: Path, port: int, persistence: list[str]) -> Path:
    (base / "data").mkdir(parents=True, exist_ok=True)
    conf = base / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"user {getpass.getuser()}",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {base / 'data'}/",
                *persistence,
                "max_queued_messages 0",
                "max_queued_bytes 0",
                "max_inflight_messages 0",
                f"log_dest file {base / 'mosquitto.log'}",
                f"listener {port} 127.0.0.1",
            ]
        )
        + "\n"
    )
    return conf


def start_broker(conf: Path, port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc


def session_client(port: int, received: set[bytes] | None = None) -> mqtt.Client:
    """Ingest's persistent session: clean_start off, a long session expiry, QoS 1."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=SESSION, protocol=mqtt.MQTTv5)
    connected = threading.Event()

    def on_connect(client: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        client.subscribe(TOPIC, qos=1)
        connected.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if received is not None:
            received.add(msg.payload[:16])

    c.on_connect = on_connect
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 7 * 86400
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    if not connected.wait(10):
        raise RuntimeError("session did not connect")
    return c


def publish_all(port: int, n: int) -> float:
    """Publish n QoS 1 messages; return seconds until the last PUBACK."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-bench", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(64)  # the gateway's order of magnitude (max_inflight_batches 8, more is faster)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    infos = [c.publish(TOPIC, f"{i:016d}".encode() + PAYLOAD, qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(timeout=120)
        if not info.is_published():
            raise RuntimeError("a publish was not acknowledged")
    took = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return took


def run_variant(name: str, persistence: list[str], n: int, wait_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="egenmon-durability-") as tmp:
        base = Path(tmp)
        port = free_port()
        conf = write_config(base, port, persistence)
        broker = start_broker(conf, port)
        try:
            # The session exists, then ingest goes away: the broker queues for it.
            s = session_client(port)
            s.disconnect()
            s.loop_stop()
            time.sleep(0.3)
            took = publish_all(port, n)
            time.sleep(wait_s)
            broker.send_signal(signal.SIGKILL)  # no shutdown save
            broker.wait()
            db = base / "data" / "mosquitto.db"
            db_bytes = db.stat().st_size if db.exists() else 0
            broker = start_broker(conf, port)
            received: set[bytes] = set()
            s = session_client(port, received)
            last, idle_since = -1, time.monotonic()
            while time.monotonic() - idle_since < 2.0:
                time.sleep(0.1)
                if len(received) != last:
                    last, idle_since = len(received), time.monotonic()
            s.disconnect()
            s.loop_stop()
        finally:
            broker.send_signal(signal.SIGTERM)
            broker.wait(10)
    kept = len(received)
    print(
        f"{name:30s} {' / '.join(persistence):45s} acked {n:6d}  kept {kept:6d}  lost {n - kept:6d}"
        f"  publish {n / took:8.0f} msg/s  db {db_bytes / 1e6:6.2f} MB"
    )
    return {"acked": n, "kept": kept, "lost": n - kept, "rate": n / took}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=4000, help="acknowledged messages per run")
    ap.add_argument("--wait-s", type=float, default=0.0, help="seconds between the last PUBACK and the SIGKILL")
    ap.add_argument("--variant", choices=["all", "deploy", *VARIANTS], default="all")
    ap.add_argument("--smoke", action="store_true", help="small N, deploy config only, SIGKILL after 2.5 s (CI)")
    args = ap.parse_args()
    n = 200 if args.smoke else args.n
    if args.smoke:
        args.wait_s = max(args.wait_s, 2.5)
    variants = dict(VARIANTS)
    variants["deploy (deploy/mosquitto)"] = deploy_lines()
    if args.smoke or args.variant == "deploy":
        variants = {"deploy (deploy/mosquitto)": deploy_lines()}
    elif args.variant != "all":
        variants = {args.variant: VARIANTS[args.variant]}
    version = subprocess.run(["mosquitto", "-h"], check=False, capture_output=True, text=True).stdout
    print(f"mosquitto: {version.splitlines()[0]}")
    print(f"N={n} QoS 1 messages of {len(PAYLOAD) + 16} bytes, SIGKILL {args.wait_s:.1f} s after the last PUBACK")
    for name, lines in variants.items():
        run_variant(name, lines, n, args.wait_s)


if __name__ == "__main__":
    main()
