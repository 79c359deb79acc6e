"""Hypothesis strategies over the valid domain of every codec."""

from __future__ import annotations

from hypothesis import strategies as st

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement, IntermediateCuffPressure
from device_profiles.codecs.cgm import CgmFeature, CgmMeasurement, CgmRecord, CgmSessionStartTime
from device_profiles.codecs.common import BatteryLevel, CurrentTime, DateTimeValue
from device_profiles.codecs.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_profiles.codecs.pulse_oximeter import PlxContinuous, PlxSpotCheck
from device_profiles.codecs.thermometer import TemperatureMeasurement
from device_profiles.codecs.weight import BodyCompositionMeasurement, WeightMeasurement, height_from_raw, mass_from_raw
from device_profiles.gatt import DateTime
from device_profiles.ieee11073 import FLOAT_MANTISSA_MAX, SFLOAT_MANTISSA_MAX, Special, decode_float, decode_sfloat

specials = st.sampled_from(list(Special))
sfloat_numbers = st.builds(
    lambda m, e: decode_sfloat(((e & 0xF) << 12) | (m & 0xFFF)),
    st.integers(-SFLOAT_MANTISSA_MAX, SFLOAT_MANTISSA_MAX),
    st.integers(-8, 7),
)
sfloats = st.one_of(sfloat_numbers, specials)
floats = st.one_of(
    st.builds(
        lambda m, e: decode_float(((e & 0xFF) << 24) | (m & 0xFFFFFF)),
        st.integers(-FLOAT_MANTISSA_MAX, FLOAT_MANTISSA_MAX),
        st.integers(-20, 20),
    ),
    specials,
)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)


@st.composite
def date_times(draw: st.DrawFn) -> DateTime:
    year = draw(st.one_of(st.just(0), st.integers(1582, 9999)))
    # Day up to 28 is valid in every month; 0 = unknown.
    return DateTime(
        year, draw(st.integers(0, 12)), draw(st.integers(0, 28)),
        draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59)),
    )  # fmt: skip


def opt(s: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
    return st.one_of(st.none(), s)


bp_status = st.integers(0, 0x3F).filter(lambda s: s & 0x18 != 0x18)
blood_pressure = st.builds(
    BloodPressureMeasurement, sfloats, sfloats, sfloats, st.booleans(), opt(date_times()), opt(sfloats), opt(u8),
    opt(bp_status),
)  # fmt: skip
cuff_pressure = st.builds(
    IntermediateCuffPressure, sfloats, st.booleans(), opt(date_times()), opt(sfloats), opt(u8), opt(bp_status)
)


@st.composite
def glucose(draw: st.DrawFn) -> GlucoseMeasurement:
    conc = draw(opt(sfloats))
    stype = loc = None
    if conc is not None:
        stype = draw(st.integers(1, 10))
        loc = draw(st.sampled_from([1, 2, 3, 4, 15]))
    return GlucoseMeasurement(
        draw(u16), draw(date_times()), draw(opt(st.integers(-32768, 32767))), conc, draw(st.booleans()),
        stype, loc, draw(opt(st.integers(0, 0x0FFF))), draw(st.booleans()),
    )  # fmt: skip


@st.composite
def glucose_context(draw: st.DrawFn) -> GlucoseMeasurementContext:
    carb = draw(st.booleans())
    tester = draw(st.booleans())
    exercise = draw(st.booleans())
    med = draw(st.booleans())
    return GlucoseMeasurementContext(
        sequence=draw(u16),
        extended_flags=draw(st.sampled_from([None, 0])),
        carbohydrate_id=draw(st.integers(1, 7)) if carb else None,
        carbohydrate_kg=draw(sfloats) if carb else None,
        meal=draw(opt(st.integers(1, 5))),
        tester=draw(st.sampled_from([1, 2, 3, 15])) if tester else None,
        health=draw(st.sampled_from([1, 2, 3, 4, 5, 15])) if tester else None,
        exercise_duration_s=draw(u16) if exercise else None,
        exercise_intensity_pct=draw(st.integers(0, 100)) if exercise else None,
        medication_id=draw(st.integers(1, 5)) if med else None,
        medication=draw(sfloats) if med else None,
        medication_in_litres=draw(st.booleans()),
        hba1c_pct=draw(opt(sfloats)),
    )


cgm_record = st.builds(
    CgmRecord, sfloats, u16, opt(st.integers(0, 0x3F)), opt(st.integers(0, 0x7F)), opt(u8), opt(sfloats),
    opt(sfloats), st.booleans(),
)  # fmt: skip
cgm_measurement = st.builds(CgmMeasurement, st.lists(cgm_record, min_size=1, max_size=4).map(tuple))
cgm_session_start = st.builds(
    CgmSessionStartTime,
    date_times(),
    st.one_of(st.just(-128), st.integers(-48, 56)),
    st.sampled_from([0, 2, 4, 8, 255]),
    st.booleans(),
)


@st.composite
def weight(draw: st.DrawFn) -> WeightMeasurement:
    imperial = draw(st.booleans())
    raw = draw(st.integers(0, 0xFFFF))
    bmi = draw(st.booleans())
    return WeightMeasurement(
        None if raw == 0xFFFF else mass_from_raw(raw, imperial),
        imperial,
        draw(opt(date_times())),
        draw(opt(u8)),
        draw(u16) / 10 if bmi else None,
        height_from_raw(draw(u16), imperial) if bmi else None,
    )


@st.composite
def body_composition(draw: st.DrawFn) -> BodyCompositionMeasurement:
    imperial = draw(st.booleans())
    fat = draw(u16)

    def mass() -> float | None:
        raw = draw(opt(u16))
        return None if raw is None else mass_from_raw(raw, imperial)

    def tenth() -> float | None:
        raw = draw(opt(u16))
        return None if raw is None else raw / 10

    height = draw(opt(u16))
    return BodyCompositionMeasurement(
        None if fat == 0xFFFF else fat / 10, imperial, draw(opt(date_times())), draw(opt(u8)), draw(opt(u16)),
        tenth(), mass(), mass(), mass(), mass(), tenth(), mass(),
        None if height is None else height_from_raw(height, imperial), draw(st.booleans()),
    )  # fmt: skip


plx_status = st.integers(0, 0xFFFF).map(lambda s: s & ~0x1F)
plx_device_status = st.integers(0, 0xFFFF)
plx_spot = st.builds(
    PlxSpotCheck, sfloats, sfloats, opt(date_times()), opt(plx_status), opt(plx_device_status), opt(sfloats),
    st.booleans(),
)  # fmt: skip
plx_continuous = st.builds(
    PlxContinuous, sfloats, sfloats, opt(st.tuples(sfloats, sfloats)), opt(st.tuples(sfloats, sfloats)),
    opt(plx_status), opt(plx_device_status), opt(sfloats),
)  # fmt: skip
temperature = st.builds(TemperatureMeasurement, floats, st.booleans(), opt(date_times()), opt(st.integers(1, 9)))
cgm_feature = st.builds(CgmFeature, st.integers(0, 0x1FFFF), st.integers(1, 10), st.sampled_from([1, 2, 3, 4, 5, 15]))
current_time = st.builds(CurrentTime, date_times(), st.integers(0, 7), u8, st.integers(0, 15))
date_time_value = st.builds(DateTimeValue, date_times())
battery = st.builds(BatteryLevel, st.integers(0, 100))

CODEC_STRATEGIES = {
    BloodPressureMeasurement: blood_pressure,
    IntermediateCuffPressure: cuff_pressure,
    GlucoseMeasurement: glucose(),
    GlucoseMeasurementContext: glucose_context(),
    CgmMeasurement: cgm_measurement,
    CgmSessionStartTime: cgm_session_start,
    CgmFeature: cgm_feature,
    WeightMeasurement: weight(),
    BodyCompositionMeasurement: body_composition(),
    PlxSpotCheck: plx_spot,
    PlxContinuous: plx_continuous,
    TemperatureMeasurement: temperature,
    CurrentTime: current_time,
    DateTimeValue: date_time_value,
    BatteryLevel: battery,
}
