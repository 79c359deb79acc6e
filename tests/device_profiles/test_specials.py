"""IEEE 11073 special values inside real measurements: never a plausible number."""

from __future__ import annotations

import pytest

from device_profiles.errors import DecodeError
from device_profiles.gatt import Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.sig import BLOOD_PRESSURE, CGM, GLUCOSE, HEALTH_THERMOMETER, PULSE_OXIMETER
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

DEVICE = DeviceInfo(address="aa", model="m", serial="S-1")
SFLOAT_SPECIALS = {"ff07": Special.NAN, "0008": Special.NRES, "fe07": Special.POS_INF, "0208": Special.NEG_INF,
                   "0108": Special.RESERVED}  # fmt: skip


@pytest.mark.parametrize(("raw", "special"), SFLOAT_SPECIALS.items())
def test_blood_pressure_systolic_special(raw: str, special: Special) -> None:
    # 00 flags | <special> systolic | 5100 diastolic 81 | 5e00 MAP 94
    data = bytes.fromhex("00" + raw + "51005e00")
    (obs,) = BLOOD_PRESSURE.decode(Uuid.BLOOD_PRESSURE_MEASUREMENT, data, received_at=RECEIVED_AT, device=DEVICE)
    systolic = obs.values["systolic"]
    assert systolic.value is None
    assert systolic.special is special
    if special in (Special.POS_INF, Special.NEG_INF):
        # Beyond the device's range: stored as a censored value, still not a number.
        reading = to_reading(obs)
        assert reading.values["systolic"].value is None
        assert reading.values["systolic"].censored == ("high" if special is Special.POS_INF else "low")
    else:
        with pytest.raises(DecodeError, match="no_value"):
            to_reading(obs)


@pytest.mark.parametrize(("raw", "special"), SFLOAT_SPECIALS.items())
def test_pulse_special_is_left_out(raw: str, special: Special) -> None:
    # 04 flags (pulse present) | 7900 5100 5e00 | <special> pulse
    data = bytes.fromhex("04790051005e00" + raw)
    (obs,) = BLOOD_PRESSURE.decode(Uuid.BLOOD_PRESSURE_MEASUREMENT, data, received_at=RECEIVED_AT, device=DEVICE)
    reading = to_reading(obs)
    assert reading.values["systolic"].value == 121.0
    if special in (Special.NAN, Special.NRES, Special.RESERVED):
        assert "pulse" not in reading.values
    else:
        assert reading.values["pulse"].value is None


@pytest.mark.parametrize(("raw", "special"), SFLOAT_SPECIALS.items())
def test_glucose_special(raw: str, special: Special) -> None:
    # 02 flags | 0100 seq | base time | <special> concentration | 11 finger, capillary blood
    data = bytes.fromhex("020100ea07030f072d00" + raw + "11")
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, data, received_at=RECEIVED_AT, device=DEVICE)
    assert obs.values["glucose"].special is special
    assert obs.values["glucose"].value is None


@pytest.mark.parametrize(("raw", "special"), SFLOAT_SPECIALS.items())
def test_cgm_and_spo2_specials(raw: str, special: Special) -> None:
    (cgm,) = CGM.decode(Uuid.CGM_MEASUREMENT, bytes.fromhex("0600" + raw + "0500"), received_at=RECEIVED_AT)
    assert cgm.values["glucose_interstitial"].special is special
    (plx,) = PULSE_OXIMETER.decode(
        Uuid.PLX_SPOT_CHECK_MEASUREMENT, bytes.fromhex("00" + raw + "4000"), received_at=RECEIVED_AT
    )
    assert plx.values["spo2"].special is special
    assert plx.values["spo2"].value is None


@pytest.mark.parametrize(
    ("raw", "special"),
    [("ffff7f00", Special.NAN), ("00008000", Special.NRES), ("01008000", Special.RESERVED)],
)
def test_temperature_float_special(raw: str, special: Special) -> None:
    (obs,) = HEALTH_THERMOMETER.decode(
        Uuid.TEMPERATURE_MEASUREMENT, bytes.fromhex("00" + raw), received_at=RECEIVED_AT, device=DEVICE
    )
    assert obs.values["temperature"].special is special
    with pytest.raises(DecodeError, match="no_value"):
        to_reading(obs)
