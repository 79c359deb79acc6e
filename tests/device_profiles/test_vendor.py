"""Vendor profiles: the shipped peak-flow profile, and a new model from a file alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.registry import default_registry, registry_with_dirs
from device_profiles.vendor import ProfileFileError, packaged_profile_texts, parse_profile, vendor_codec
from device_profiles.vocabulary import Kind
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

PF_CHAR = "6e4a0002-3c1d-4b8e-9a57-1f2e3d4c5b6a"
# flags 0x07 = timestamp + FEV1 + FVC | 2a00 record 42 | b401 PEF 436 L/min
# | ea07030f081e00 2026-03-15 08:30:00 | 3701 = 311 x 10 mL = 3.11 L FEV1 | f401 = 5.00 L FVC
PF_FULL = bytes.fromhex("072a00b401ea07030f081e003701f401")
# flags 0x18 = poor blow + from memory, PEF only | 0700 record 7 | 2c01 PEF 300 L/min
PF_MINIMAL = bytes.fromhex("1807002c01")

PF = default_registry().get("vendor.andetag.pf100")


def test_shipped_profile_is_packaged() -> None:
    assert "example_pf100.toml" in packaged_profile_texts()
    assert PF.kind is Kind.SPIROMETRY
    assert PF.sends_stored_records_on_connect
    assert PF.set_clock
    assert not PF.needs_bonding


def test_peak_flow_full_record(device: DeviceInfo) -> None:
    (obs,) = PF.decode(PF_CHAR, PF_FULL, received_at=RECEIVED_AT, device=device)
    assert obs.sequence == 42
    assert obs.device_time == datetime(2026, 3, 15, 8, 30, tzinfo=UTC)
    assert obs.values["pef"].value == 436.0
    assert obs.values["fev1"].value == pytest.approx(3.11)
    assert obs.values["fvc"].value == pytest.approx(5.0)
    reading = to_reading(obs)
    assert reading.kind is Kind.SPIROMETRY
    assert set(reading.values) == {"pef", "fev1", "fvc"}


def test_peak_flow_flags_and_absent_fields() -> None:
    (obs,) = PF.decode(PF_CHAR, PF_MINIMAL, received_at=RECEIVED_AT)
    assert set(obs.values) == {"pef"}
    assert obs.flags == {"measurement_unstable", "from_stored_records"}
    assert obs.device_time is None


def test_invalid_marker_is_no_number() -> None:
    (obs,) = PF.decode(PF_CHAR, bytes.fromhex("000800ffff"), received_at=RECEIVED_AT)
    assert obs.values["pef"].special is Special.NAN


@pytest.mark.parametrize(
    "data",
    [
        PF_MINIMAL[:-1],  # truncated
        PF_MINIMAL + b"\x00",  # trailing
        bytes.fromhex("0107002c01"),  # timestamp announced, absent
        bytes.fromhex("2007002c01"),  # reserved flag bit5
        bytes.fromhex("0107002c01ea070d0f081e00"),  # month 13
    ],
)
def test_malformed_peak_flow(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        PF.decode(PF_CHAR, data, received_at=RECEIVED_AT)
    assert err.value.raw == data


def test_encoder_for_simulators() -> None:
    codec = vendor_codec(packaged_profile_texts()["example_pf100.toml"], PF_CHAR)
    encoded = codec.encode(
        {"flags": 0x07, "sequence": 42, "pef": 436.0, "timestamp": DateTime(2026, 3, 15, 8, 30, 0), "fev1": 3.11,
         "fvc": 5.0}
    )  # fmt: skip
    assert encoded == PF_FULL
    assert codec.encode({"flags": 0x18, "sequence": 7, "pef": 300.0}) == PF_MINIMAL
    assert codec.encode({"flags": 0, "sequence": 8, "pef": Special.NAN}) == bytes.fromhex("000800ffff")


# A region's new model, described only by a file: an invented FEV1/FVC spirometer with a
# big-endian layout, a record-type constant, IEEE 11073 SFLOAT values and no timestamp.
NEW_MODEL = """
id = "vendor.region.spiro-x"
display_name = "Region test spirometer Spiro-X"
kind = "spirometry"
name_patterns = ["SPIRO-X*"]
service_uuids = ["0000fff0-0000-1000-8000-00805f9b34fb"]
needs_bonding = true

[[characteristic]]
uuid = "fff1"
mode = "notify"

  [[characteristic.fields]]
  name = "record_type"
  type = "uint8"
  role = "constant"
  equals = 0xA5

  [[characteristic.fields]]
  name = "seq"
  type = "uint16be"
  role = "sequence"

  [[characteristic.fields]]
  name = "fev1_ml"
  type = "uint16be"
  role = "value"
  component = "fev1"
  unit = "mL"

  [[characteristic.fields]]
  name = "fvc"
  type = "sfloat"
  role = "value"
  component = "fvc"
  unit = "L"

  [[characteristic.fields]]
  name = "pef_l_s"
  type = "float"
  role = "value"
  component = "pef"
  unit = "L/s"
"""


UNMATCHABLE = NEW_MODEL.replace('name_patterns = ["SPIRO-X*"]\n', "").replace(
    'service_uuids = ["0000fff0-0000-1000-8000-00805f9b34fb"]\n', ""
)


def test_a_profile_file_alone_adds_a_model(tmp_path: Path) -> None:
    (tmp_path / "spiro_x.toml").write_text(NEW_MODEL, encoding="utf-8")
    registry = registry_with_dirs([tmp_path])
    assert default_registry().match([], "SPIRO-X 17") is None  # unknown before
    profile = registry.match(["fff0"], "SPIRO-X 17", {})
    assert profile is not None
    assert profile.id == "vendor.region.spiro-x"
    assert profile.needs_bonding
    assert profile.source == "spiro_x.toml"
    # a5 record type | 0102 record 258 (big-endian) | 0c1c = 0x0C1C = 3100 mL (big-endian)
    # | 2cf0 = SFLOAT 0xF02C: exp -1, mantissa 44 -> 4.4 L | 4b0000ff = FLOAT exp -1,
    # mantissa 75 -> 7.5 L/s
    data = bytes.fromhex("a501020c1c2cf04b0000ff")
    (obs,) = profile.decode("0000fff1-0000-1000-8000-00805f9b34fb", data, received_at=RECEIVED_AT)
    assert obs.sequence == 258
    assert obs.values["fev1"].value == pytest.approx(3.1)
    assert obs.values["fvc"].value == pytest.approx(4.4)
    assert obs.values["pef"].value == pytest.approx(450.0)  # 7.5 L/s = 450 L/min
    reading = to_reading(obs, DeviceInfo(address="11:22:33:44:55:66", model="Spiro-X"))
    assert reading.values["pef"].original_unit == "L/s"
    with pytest.raises(DecodeError, match="expected 165"):
        profile.decode("fff1", b"\x00" + data[1:], received_at=RECEIVED_AT)


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (NEW_MODEL.replace('unit = "mL"', 'unit = "mmHg"'), "does not convert"),
        (NEW_MODEL.replace('"fev1"\n  unit = "mL"', '"systolic"\n  unit = "mmHg"'), "does not belong"),
        (NEW_MODEL.replace('"uint16be"\n  role = "sequence"', '"int128"\n  role = "sequence"'), "type"),
        (UNMATCHABLE, "matched"),
        (NEW_MODEL.replace("equals = 0xA5", ""), "equals"),
        (NEW_MODEL.replace('component = "fvc"', 'component = "fev1"'), "two fields"),
        (NEW_MODEL.replace('name = "fvc"', 'name = "seq"'), "duplicate field"),
        (NEW_MODEL.replace('unit = "L/s"', 'unit = "L/s"\n  present_if = { field = "fvc", mask = 1 }'), "integer"),
        (NEW_MODEL + "\nbogus = 1\n", "bogus"),
        ("id = [", "TOML"),
    ],
)  # fmt: skip
def test_bad_profile_files_say_why(broken: str, reason: str) -> None:
    with pytest.raises(ProfileFileError) as err:
        parse_profile(broken, source="broken.toml")
    assert reason in str(err.value)
    assert err.value.source == "broken.toml"
