"""Choosing a profile from an advertisement; profile data (quirks, subscriptions)."""

from __future__ import annotations

import pytest

from device_profiles.errors import DecodeError
from device_profiles.gatt import Uuid, normalize_uuid
from device_profiles.profile import CharacteristicSpec, DeviceProfile, Mode, Role
from device_profiles.registry import default_registry, get_profile, match_profile
from device_profiles.vocabulary import Kind

from .conftest import RECEIVED_AT


@pytest.mark.parametrize(
    ("services", "profile_id"),
    [
        (["1810"], "sig.blood_pressure"),
        (["00001808-0000-1000-8000-00805f9b34fb"], "sig.glucose"),
        (["0x181F"], "sig.cgm"),
        (["181d"], "sig.weight_scale"),
        (["181d", "181b"], "sig.body_composition"),  # both services beat weight alone
        (["1822"], "sig.pulse_oximeter"),
        (["1809"], "sig.health_thermometer"),
        (["180f", "1810", "180a"], "sig.blood_pressure"),
    ],
)
def test_sig_profiles_match_on_service(services: list[str], profile_id: str) -> None:
    profile = match_profile(services, "Some device", {})
    assert profile is not None
    assert profile.id == profile_id


def test_nothing_matches_unknown_devices() -> None:
    assert match_profile([], "Headphones", {0x004C: b"\x02"}) is None
    assert match_profile(["180f"], None, None) is None  # battery alone says nothing


def test_vendor_profile_matches_by_name_or_manufacturer_only() -> None:
    assert match_profile([], "PF-100 0042").id == "vendor.andetag.pf100"  # type: ignore[union-attr]
    assert match_profile([], "andetag pf-100").id == "vendor.andetag.pf100"  # type: ignore[union-attr]
    assert match_profile([], None, {0xFFFF: b"\x01"}).id == "vendor.andetag.pf100"  # type: ignore[union-attr]
    # Its service UUID alone is not enough for a model-specific profile.
    assert match_profile(["6e4a0001-3c1d-4b8e-9a57-1f2e3d4c5b6a"], "Other") is None


def test_quirks_are_data() -> None:
    glucose = get_profile("sig.glucose")
    assert glucose.needs_bonding
    assert glucose.uses_racp
    assert not glucose.sends_stored_records_on_connect
    bp = get_profile("sig.blood_pressure")
    assert bp.sends_stored_records_on_connect
    assert bp.set_clock
    assert not bp.uses_racp
    measurement = bp.characteristic(Role.MEASUREMENT)
    assert measurement is not None
    assert (measurement.uuid, measurement.mode) == (Uuid.BLOOD_PRESSURE_MEASUREMENT, Mode.INDICATE)
    assert Uuid.GLUCOSE_MEASUREMENT in {c.uuid for c in glucose.subscriptions}
    assert Uuid.BATTERY_LEVEL in {c.uuid for c in glucose.reads}


def test_unknown_characteristic_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as err:
        get_profile("sig.blood_pressure").decode("2a18", b"\x00", received_at=RECEIVED_AT)
    assert err.value.raw == b"\x00"


def test_registry_ids_are_unique_and_ordered_vendor_first() -> None:
    ids = [p.id for p in default_registry().profiles]
    assert len(ids) == len(set(ids))
    assert ids[0].startswith("vendor.")


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("2a35", "00002a35-0000-1000-8000-00805f9b34fb"),
        ("0x2A35", "00002a35-0000-1000-8000-00805f9b34fb"),
        ("00002A35", "00002a35-0000-1000-8000-00805f9b34fb"),
        ("6E4A00013C1D4B8E9A571F2E3D4C5B6A", "6e4a0001-3c1d-4b8e-9a57-1f2e3d4c5b6a"),
    ],
)
def test_normalize_uuid(text: str, full: str) -> None:
    assert normalize_uuid(text) == full


def test_normalize_uuid_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="UUID"):
        normalize_uuid("xyz")


def test_a_codec_bug_still_surfaces_as_decode_error(caplog: pytest.LogCaptureFixture) -> None:
    def broken(raw: bytes, ctx: object) -> list[object]:
        return [raw[10]]  # IndexError: what the safety net exists for

    profile = DeviceProfile(
        id="test.broken",
        display_name="broken",
        kind=Kind.WEIGHT,
        service_uuids=(),
        characteristics=(CharacteristicSpec("0000fff1-0000-1000-8000-00805f9b34fb", Mode.NOTIFY, Role.MEASUREMENT),),
        decoders={"0000fff1-0000-1000-8000-00805f9b34fb": broken},  # type: ignore[dict-item]
    )
    with pytest.raises(DecodeError, match="internal decoder error") as err:
        profile.decode("fff1", b"\x01", received_at=RECEIVED_AT)
    assert err.value.raw == b"\x01"
    assert "decoder_bug" in caplog.text
