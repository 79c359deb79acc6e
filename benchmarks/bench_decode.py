"""Decoding speed per characteristic (decodes per second, one core).

Three figures per characteristic:
  codec      Measurement.from_bytes(data)                  bytes -> dataclass
  profile    DeviceProfile.decode(uuid, data, ...)         bytes -> Observation(s) (the gateway's hot path)
  reading    ... -> device_profiles.observation.to_reading  -> wire Reading (pydantic, at the edge)

Target (issue 3): >= 100,000 blood-pressure decodes/s on one core.

    python benchmarks/bench_decode.py            # full run (~15 s)
    python benchmarks/bench_decode.py --smoke    # tiny run, for the smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement
from device_profiles.codecs.cgm import CgmMeasurement
from device_profiles.codecs.glucose import GlucoseMeasurement
from device_profiles.codecs.pulse_oximeter import PlxSpotCheck
from device_profiles.codecs.thermometer import TemperatureMeasurement
from device_profiles.codecs.weight import BodyCompositionMeasurement, WeightMeasurement
from device_profiles.gatt import Uuid
from device_profiles.observation import to_reading
from device_profiles.registry import default_registry
from device_profiles.wire import DeviceInfo

TS = "ea07030f081e00"
CASES: list[tuple[str, str, str, bytes, Callable[[bytes], object]]] = [
    ("blood_pressure 0x2A35 (full)", "sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT,
     bytes.fromhex("1e790051005e00" + TS + "4800010500"), BloodPressureMeasurement.from_bytes),
    ("blood_pressure 0x2A35 (minimal)", "sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT,
     bytes.fromhex("00790051005e00"), BloodPressureMeasurement.from_bytes),
    ("glucose 0x2A18", "sig.glucose", Uuid.GLUCOSE_MEASUREMENT,
     bytes.fromhex("0b1700" + TS + "050075b0110000"), GlucoseMeasurement.from_bytes),
    ("cgm 0x2AA7 (with CRC)", "sig.cgm", Uuid.CGM_MEASUREMENT,
     bytes.fromhex("0fe378000500020400f1ff5f00f21a"), CgmMeasurement.from_bytes),
    ("weight 0x2A9D", "sig.weight_scale", Uuid.WEIGHT_MEASUREMENT,
     bytes.fromhex("0ee43e" + TS + "01f8000a07"), WeightMeasurement.from_bytes),
    ("body_composition 0x2A9C", "sig.body_composition", Uuid.BODY_COMPOSITION_MEASUREMENT,
     bytes.fromhex("060cfd00" + TS + "01e43e0a07"), BodyCompositionMeasurement.from_bytes),
    ("plx_spot_check 0x2A5E", "sig.pulse_oximeter", Uuid.PLX_SPOT_CHECK_MEASUREMENT,
     bytes.fromhex("0f61004000" + TS + "000220000019f0"), PlxSpotCheck.from_bytes),
    ("temperature 0x2A1C", "sig.health_thermometer", Uuid.TEMPERATURE_MEASUREMENT,
     bytes.fromhex("066e0100ff" + TS + "02"), TemperatureMeasurement.from_bytes),
]  # fmt: skip
PEAK_FLOW = ("peak_flow (vendor TOML)", "vendor.andetag.pf100", "6e4a0002-3c1d-4b8e-9a57-1f2e3d4c5b6a",
             bytes.fromhex("072a00b401" + TS + "3701f401"))  # fmt: skip


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second over at least ``seconds`` (batches of 1,000)."""
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(1000):
            fn()
        n += 1000
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny run (for tests)")
    parser.add_argument("--seconds", type=float, default=0.5, help="measuring time per figure")
    args = parser.parse_args()
    seconds = 0.01 if args.smoke else args.seconds
    registry = default_registry()
    device = DeviceInfo(address="C0:FF:EE:00:00:01", model="bench", serial="SN-1")
    received_at = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)

    print(f"{'characteristic':34} {'codec/s':>12} {'profile/s':>12} {'reading/s':>12}")
    results: dict[str, float] = {}
    rows: list[tuple[str, str, str, bytes, Callable[[bytes], object] | None]] = [*CASES, (*PEAK_FLOW, None)]
    for label, profile_id, uuid, data, codec in rows:
        profile = registry.get(profile_id)

        def via_profile(p=profile, u=uuid, d=data) -> object:  # type: ignore[no-untyped-def]
            return p.decode(u, d, received_at=received_at, device=device)

        def to_wire(p=profile, u=uuid, d=data) -> object:  # type: ignore[no-untyped-def]
            return [to_reading(o) for o in p.decode(u, d, received_at=received_at, device=device)]

        codec_rate = rate(lambda c=codec, d=data: c(d), seconds) if codec else float("nan")  # type: ignore[misc]
        profile_rate = rate(via_profile, seconds)
        reading_rate = rate(to_wire, seconds)
        results[label] = profile_rate
        print(f"{label:34} {codec_rate:12,.0f} {profile_rate:12,.0f} {reading_rate:12,.0f}")
    bp = results["blood_pressure 0x2A35 (full)"]
    verdict = "meets" if bp >= 100_000 else "BELOW"
    print(f"blood pressure decodes/s (profile path): {bp:,.0f} ({verdict} the 100,000/s target)")


if __name__ == "__main__":
    main()
