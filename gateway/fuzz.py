"""Random GATT payloads through the gateway's own collection path (not just the codecs).

Each payload goes to a :class:`gateway.ble.DeviceCollector` exactly as bleak delivers it:
through the notification callback the collector registers with ``start_notify`` (decode,
clock correction, user index, content keys, the outbox commit, decode-error bookkeeping),
or through the path of a characteristic it reads (Device Information, battery, CGM session
start). A crash is any exception escaping that path; a malformed value must end up counted
and kept as undecodable instead. Used by ``tests/gateway/test_fuzz_collection.py`` (a
modest hypothesis run) and ``benchmarks/fuzz_gateway.py`` (100,000 payloads).
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bleak.backends.device import BLEDevice

from device_profiles.gatt import Uuid
from device_profiles.profile import DeviceProfile
from device_profiles.registry import default_registry
from gateway.ble import BleConfig, DeviceCollector, DeviceHealth
from gateway.logic import DecodeCounters
from gateway.outbox import Outbox

NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)


@dataclass
class FuzzResult:
    payloads: int = 0
    crashes: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    readings: int = 0
    decode_errors: int = 0


class CollectionTarget:
    """One collector per profile over one real outbox; :meth:`feed` is one payload."""

    def __init__(self, state_dir: Path) -> None:
        self.outbox = Outbox(state_dir / "fuzz.sqlite3", capacity=10_000_000)
        self.counters = DecodeCounters()
        self.cfg = BleConfig(client_backend=None)
        self.collectors: dict[str, tuple[DeviceCollector, list[str]]] = {}
        for i, profile in enumerate(default_registry().profiles):
            self.collectors[profile.id] = (self._collector(profile, i), self._uuids(profile))

    def _collector(self, profile: DeviceProfile, i: int) -> DeviceCollector:
        address = f"FF:00:00:00:{i // 256:02X}:{i % 256:02X}"
        device = BLEDevice(address, profile.display_name, None)
        health = DeviceHealth(address, profile.display_name[:128], profile.kind.value)
        return DeviceCollector(
            device, profile, cfg=self.cfg, outbox=self.outbox, counters=self.counters, health=health, now=lambda: NOW
        )

    @staticmethod
    def _uuids(profile: DeviceProfile) -> list[str]:
        return sorted({c.uuid for c in profile.characteristics} | {Uuid.RECORD_ACCESS_CONTROL_POINT})

    def feed(self, profile_id: str, uuid: str, payload: bytes) -> None:
        collector, _ = self.collectors[profile_id]
        subscribed = {s.uuid for s in collector.profile.subscriptions}
        if uuid in subscribed or uuid == Uuid.RECORD_ACCESS_CONTROL_POINT:
            collector._make_callback(uuid)(None, bytearray(payload))
        else:
            collector._store(collector._feed(uuid, payload))

    def end_sessions(self) -> None:
        for collector, _ in self.collectors.values():
            collector._store(collector.session.flush())

    def close(self) -> None:
        self.outbox.close()


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """Random bytes, or a seed with bytes flipped, cut or appended (finds layout edges)."""
    choice = rng.random()
    if choice < 0.4 or not seeds:
        return rng.randbytes(rng.randint(0, 40))
    if choice < 0.5:
        return rng.choice(seeds)  # valid values too: the store and dedupe paths run
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.5 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op < 0.75 and data:
            del data[rng.randrange(len(data)) :]
        else:
            data += rng.randbytes(rng.randint(1, 6))
    return bytes(data)


def run(payloads: int, seed: int = 1, seeds: list[bytes] | None = None) -> FuzzResult:
    rng = random.Random(seed)
    result = FuzzResult()
    with tempfile.TemporaryDirectory() as tmp:
        target = CollectionTarget(Path(tmp))
        keys = list(target.collectors)
        try:
            for _ in range(payloads):
                pid = rng.choice(keys)
                uuid = rng.choice(target.collectors[pid][1])
                payload = mutate(rng, seeds or [])
                result.payloads += 1
                try:
                    target.feed(pid, uuid, payload)
                except Exception as err:
                    result.crashes.append((pid, uuid, payload, repr(err)))
            target.end_sessions()
            result.readings = target.outbox.depth
            result.decode_errors = target.outbox.rejected_count()
        finally:
            target.close()
    return result


def as_dict(result: FuzzResult) -> dict[str, Any]:
    return {
        "payloads": result.payloads,
        "crashes": len(result.crashes),
        "readings_stored": result.readings,
        "undecodable_kept": result.decode_errors,
        "first_crashes": [(p, u, b.hex(), e) for p, u, b, e in result.crashes[:5]],
    }
