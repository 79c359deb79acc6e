"""Fuzz: 100,000 random and mutated payloads through every decoder, through the full
profile path (bytes -> observations -> wire reading). Only DecodeError may come out."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement, IntermediateCuffPressure
from device_profiles.codecs.cgm import CgmFeature, CgmMeasurement, CgmSessionStartTime
from device_profiles.codecs.common import BatteryLevel, CurrentTime, DateTimeValue, InfoString
from device_profiles.codecs.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_profiles.codecs.pulse_oximeter import PlxContinuous, PlxSpotCheck
from device_profiles.codecs.racp import RacpRequest, parse_racp_response
from device_profiles.codecs.thermometer import TemperatureMeasurement
from device_profiles.codecs.weight import BodyCompositionMeasurement, WeightMeasurement
from device_profiles.errors import DecodeError
from device_profiles.observation import to_reading
from device_profiles.registry import default_registry
from device_profiles.vendor import parse_profile

from . import test_blood_pressure as bp
from . import test_cgm as cgm
from . import test_common as common
from . import test_glucose as glu
from . import test_pulse_oximeter as plx
from . import test_thermometer as thermo
from . import test_vendor as vendor
from . import test_weight as weight
from .conftest import DEVICE, RECEIVED_AT

PAYLOADS = 100_000

SEEDS = [
    bp.BP_MINIMAL, bp.BP_FULL, bp.BP_KPA, glu.GLUCOSE_FULL, glu.GLUCOSE_MOL, glu.GLUCOSE_LOW, glu.CONTEXT_FULL,
    cgm.CGM_FULL, cgm.CGM_CRC, cgm.CGM_LOW, cgm.SESSION_START, weight.WEIGHT_SI, weight.WEIGHT_LB_HEIGHT,
    weight.BODY_SI, plx.SPOT_FULL, plx.CONT_FULL, thermo.TEMP_FULL, thermo.TEMP_F, common.CURRENT_TIME,
    vendor.PF_FULL, vendor.PF_MINIMAL, bytes.fromhex("06000101"), bytes.fromhex("05000c00"),
]  # fmt: skip

DECODERS: list[Callable[[bytes], object]] = [
    BloodPressureMeasurement.from_bytes, IntermediateCuffPressure.from_bytes, GlucoseMeasurement.from_bytes,
    GlucoseMeasurementContext.from_bytes, CgmMeasurement.from_bytes, CgmSessionStartTime.from_bytes,
    WeightMeasurement.from_bytes, BodyCompositionMeasurement.from_bytes, PlxSpotCheck.from_bytes,
    PlxContinuous.from_bytes, TemperatureMeasurement.from_bytes, CurrentTime.from_bytes, DateTimeValue.from_bytes,
    BatteryLevel.from_bytes, InfoString.from_bytes, parse_racp_response, RacpRequest.from_bytes, CgmFeature.from_bytes,
]  # fmt: skip


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        if op == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # truncate
            del data[rng.randrange(len(data)) :]
        elif op == 2:  # append garbage
            data += rng.randbytes(rng.randint(1, 4))
        elif op == 3 and data:  # replace the flags byte
            data[0] = rng.randrange(256)
        elif data:  # overwrite a byte with an interesting value
            data[rng.randrange(len(data))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x07, 0x08])
    return bytes(data)


def check_decode_error(err: DecodeError, raw: bytes, *, no_value: bool = False) -> None:
    assert err.raw == raw
    assert err.reason
    # A codec bug caught by DeviceProfile.decode's safety net would say so: none allowed.
    assert not err.reason.startswith("internal decoder error"), err
    if no_value:
        assert err.reason.startswith("no_value"), err


def payloads(n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        if i % 4 == 0:
            out.append(rng.randbytes(rng.randint(0, 24)))
        else:
            out.append(_mutate(rng, rng.choice(SEEDS)))
    return out


def test_fuzz_every_decoder_only_raises_decode_error() -> None:
    rng = random.Random(20261125)
    started = time.perf_counter()
    accepted = 0
    # Half the payloads go through every bare codec, half through the profile path below;
    # 100,000 payloads in all, each decoder seeing tens of thousands of them.
    for raw in payloads(PAYLOADS // 2, rng):
        for decode in DECODERS:
            try:
                decode(raw)
                accepted += 1
            except DecodeError as err:
                check_decode_error(err, raw)
    assert accepted > 0  # the mutations must also produce valid values sometimes
    assert time.perf_counter() - started < 60


def test_fuzz_profile_path_to_wire_reading() -> None:
    rng = random.Random(4242)
    registry = default_registry()
    targets = [(p, c.uuid) for p in registry.profiles for c in p.characteristics]
    readings = 0
    for raw in payloads(PAYLOADS // 2, rng):
        profile, uuid = targets[rng.randrange(len(targets))]
        try:
            observations = profile.decode(uuid, raw, received_at=RECEIVED_AT, device=DEVICE)
        except DecodeError as err:
            check_decode_error(err, raw)
            continue
        for obs in observations:
            try:
                reading = to_reading(obs)
            except DecodeError as err:
                check_decode_error(err, raw, no_value=True)
            else:
                readings += 1
                assert reading.kind == obs.kind
    assert readings > 0


# A vendor profile using every field type, to fuzz the generic decoder as well.
ALL_TYPES_PROFILE = """
id = "vendor.test.all-types"
display_name = "All field types"
kind = "spirometry"
name_patterns = ["ALLTYPES*"]

[[characteristic]]
uuid = "fff1"
mode = "notify"
[[characteristic.fields]]
name = "flags"
type = "uint8"
role = "flags"
allowed_bits = 0x0F
flag_bits = { "0x10" = "low_battery" }
[[characteristic.fields]]
name = "seq"
type = "uint24le"
role = "sequence"
[[characteristic.fields]]
name = "pef"
type = "float32le"
role = "value"
component = "pef"
unit = "L/s"
[[characteristic.fields]]
name = "fev1"
type = "sfloat"
role = "value"
component = "fev1"
unit = "L"
present_if = { field = "flags", mask = 0x01 }
[[characteristic.fields]]
name = "fvc"
type = "float"
role = "value"
component = "fvc"
unit = "L"
present_if = { field = "flags", mask = 0x02 }
[[characteristic.fields]]
name = "when"
type = "datetime"
role = "timestamp"
present_if = { field = "flags", mask = 0x04 }
[[characteristic.fields]]
name = "pad"
type = "int16be"
present_if = { field = "flags", mask = 0x08, negate = true }
[[characteristic.fields]]
name = "tail"
type = "int32le"
role = "constant"
equals = -1
"""


def test_fuzz_generic_vendor_decoder() -> None:
    profile = parse_profile(ALL_TYPES_PROFILE)
    rng = random.Random(7)
    seeds = [
        bytes.fromhex("070100000000f0402cf04b0000ffea07030f081e000000ffffffff"),
        bytes.fromhex("080200000000c07fffffffff"),  # NaN PEF, no optional fields
        bytes.fromhex("180300000000807fffffffff"),  # +inf PEF
    ]
    readings = 0
    for i in range(20_000):
        raw = seeds[i % 3] if i < 3 else _mutate(rng, rng.choice(seeds))
        try:
            observations = profile.decode("fff1", raw, received_at=RECEIVED_AT, device=DEVICE)
        except DecodeError as err:
            check_decode_error(err, raw)
            continue
        for obs in observations:
            try:
                to_reading(obs)
            except DecodeError as err:
                check_decode_error(err, raw, no_value=True)
            else:
                readings += 1
    assert readings > 0
