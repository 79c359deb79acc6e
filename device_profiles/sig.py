"""The Bluetooth SIG device types egenmon supports, as generic DeviceProfiles.

Quirks common to a whole device type are set from the service specifications (e.g. the
Glucose Service requires bonding and stores records behind the RACP); a model that
behaves differently gets its own profile (a vendor profile file) that wins the match.
"""

from __future__ import annotations

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement, IntermediateCuffPressure
from device_profiles.codecs.cgm import CgmFeature, CgmMeasurement, CgmSessionStartTime
from device_profiles.codecs.common import (
    DEVICE_INFORMATION_STRINGS,
    BatteryLevel,
    CurrentTime,
    DateTimeValue,
    InfoString,
)
from device_profiles.codecs.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_profiles.codecs.pulse_oximeter import PlxContinuous, PlxSpotCheck
from device_profiles.codecs.racp import RacpIndicationCodec
from device_profiles.codecs.thermometer import IntermediateTemperature, TemperatureMeasurement
from device_profiles.codecs.weight import BodyCompositionMeasurement, WeightMeasurement
from device_profiles.gatt import Uuid
from device_profiles.profile import (
    CharacteristicSpec,
    Decoder,
    DeviceProfile,
    Mode,
    Role,
    checked_no_observations,
    codec_decoder,
)
from device_profiles.vocabulary import Kind

C = CharacteristicSpec

# Read by the gateway on every device that has them (all optional).
COMMON_CHARACTERISTICS: tuple[CharacteristicSpec, ...] = (
    *(C(u, Mode.READ, Role.INFO, optional=True) for u in DEVICE_INFORMATION_STRINGS),
    C(Uuid.BATTERY_LEVEL, Mode.READ, Role.BATTERY, optional=True),
    C(Uuid.CURRENT_TIME, Mode.WRITE, Role.CLOCK, optional=True),
)

COMMON_DECODERS: dict[str, Decoder] = {
    **{u: checked_no_observations(InfoString) for u in DEVICE_INFORMATION_STRINGS},
    Uuid.BATTERY_LEVEL: checked_no_observations(BatteryLevel),
    Uuid.CURRENT_TIME: checked_no_observations(CurrentTime),
    Uuid.DATE_TIME: checked_no_observations(DateTimeValue),
}


def _profile(  # noqa: PLR0917 - a table of SIG profiles reads best positionally
    id_: str,
    display: str,
    kind: Kind,
    services: tuple[str, ...],
    chars: tuple[CharacteristicSpec, ...],
    decoders: dict[str, Decoder],
    *,
    needs_bonding: bool = False,
    sends_stored_records_on_connect: bool = False,
    uses_racp: bool = False,
    set_clock: bool = False,
) -> DeviceProfile:
    return DeviceProfile(
        id=id_,
        display_name=display,
        kind=kind,
        service_uuids=services,
        characteristics=chars + COMMON_CHARACTERISTICS,
        decoders={**COMMON_DECODERS, **decoders},
        needs_bonding=needs_bonding,
        sends_stored_records_on_connect=sends_stored_records_on_connect,
        uses_racp=uses_racp,
        set_clock=set_clock,
    )


BLOOD_PRESSURE = _profile(
    "sig.blood_pressure",
    "Blood pressure monitor (Bluetooth SIG Blood Pressure Service)",
    Kind.BLOOD_PRESSURE,
    (Uuid.BLOOD_PRESSURE,),
    (
        C(Uuid.BLOOD_PRESSURE_MEASUREMENT, Mode.INDICATE, Role.MEASUREMENT),
        C(Uuid.INTERMEDIATE_CUFF_PRESSURE, Mode.NOTIFY, Role.INTERMEDIATE, optional=True),
    ),
    {
        Uuid.BLOOD_PRESSURE_MEASUREMENT: codec_decoder(BloodPressureMeasurement),
        Uuid.INTERMEDIATE_CUFF_PRESSURE: checked_no_observations(IntermediateCuffPressure),
    },
    # BLS: cuffs keep measurements taken away from the gateway and indicate them all
    # once the collector subscribes; most require bonding first.
    needs_bonding=True,
    sends_stored_records_on_connect=True,
    set_clock=True,
)

GLUCOSE = _profile(
    "sig.glucose",
    "Blood glucose meter (Bluetooth SIG Glucose Service)",
    Kind.GLUCOSE_CAPILLARY,
    (Uuid.GLUCOSE,),
    (
        C(Uuid.GLUCOSE_MEASUREMENT, Mode.NOTIFY, Role.MEASUREMENT),
        C(Uuid.GLUCOSE_MEASUREMENT_CONTEXT, Mode.NOTIFY, Role.CONTEXT, optional=True),
        C(Uuid.RECORD_ACCESS_CONTROL_POINT, Mode.INDICATE, Role.RACP),
    ),
    {
        Uuid.GLUCOSE_MEASUREMENT: codec_decoder(GlucoseMeasurement),
        Uuid.GLUCOSE_MEASUREMENT_CONTEXT: checked_no_observations(GlucoseMeasurementContext),
        Uuid.RECORD_ACCESS_CONTROL_POINT: checked_no_observations(RacpIndicationCodec),
    },
    # Glucose Service 1.0 §2: bonding is mandatory; records are fetched with the RACP
    # ("report stored records, sequence number >= last + 1").
    needs_bonding=True,
    uses_racp=True,
    set_clock=True,
)

CGM = _profile(
    "sig.cgm",
    "Continuous glucose monitor (Bluetooth SIG CGM Service)",
    Kind.GLUCOSE_CGM,
    (Uuid.CGM,),
    (
        C(Uuid.CGM_FEATURE, Mode.READ, Role.FEATURE, optional=True),
        C(Uuid.CGM_SESSION_START_TIME, Mode.READ, Role.SESSION_START),
        C(Uuid.CGM_MEASUREMENT, Mode.NOTIFY, Role.MEASUREMENT),
        C(Uuid.RECORD_ACCESS_CONTROL_POINT, Mode.INDICATE, Role.RACP, optional=True),
    ),
    {
        Uuid.CGM_MEASUREMENT: codec_decoder(CgmMeasurement),
        Uuid.CGM_SESSION_START_TIME: checked_no_observations(CgmSessionStartTime),
        Uuid.CGM_FEATURE: checked_no_observations(CgmFeature),
        Uuid.RECORD_ACCESS_CONTROL_POINT: checked_no_observations(RacpIndicationCodec),
    },
    needs_bonding=True,
    uses_racp=True,
)

WEIGHT_SCALE = _profile(
    "sig.weight_scale",
    "Weight scale (Bluetooth SIG Weight Scale Service)",
    Kind.WEIGHT,
    (Uuid.WEIGHT_SCALE,),
    (C(Uuid.WEIGHT_MEASUREMENT, Mode.INDICATE, Role.MEASUREMENT),),
    {Uuid.WEIGHT_MEASUREMENT: codec_decoder(WeightMeasurement)},
    sends_stored_records_on_connect=True,
    set_clock=True,
)

BODY_COMPOSITION = _profile(
    "sig.body_composition",
    "Body composition scale (Bluetooth SIG Body Composition + Weight Scale)",
    Kind.BODY_COMPOSITION,
    # Body composition scales expose both services; matching both beats WEIGHT_SCALE.
    (Uuid.BODY_COMPOSITION, Uuid.WEIGHT_SCALE),
    (
        C(Uuid.BODY_COMPOSITION_MEASUREMENT, Mode.INDICATE, Role.MEASUREMENT),
        C(Uuid.WEIGHT_MEASUREMENT, Mode.INDICATE, Role.MEASUREMENT, optional=True),
    ),
    {
        Uuid.BODY_COMPOSITION_MEASUREMENT: codec_decoder(BodyCompositionMeasurement),
        Uuid.WEIGHT_MEASUREMENT: codec_decoder(WeightMeasurement),
    },
    sends_stored_records_on_connect=True,
    set_clock=True,
)

PULSE_OXIMETER = _profile(
    "sig.pulse_oximeter",
    "Pulse oximeter (Bluetooth SIG Pulse Oximeter Service)",
    Kind.SPO2,
    (Uuid.PULSE_OXIMETER,),
    (
        C(Uuid.PLX_SPOT_CHECK_MEASUREMENT, Mode.INDICATE, Role.MEASUREMENT, optional=True),
        # Continuous values arrive about once a second: subscribe only where the care plan
        # asks for continuous monitoring, hence optional.
        C(Uuid.PLX_CONTINUOUS_MEASUREMENT, Mode.NOTIFY, Role.MEASUREMENT, optional=True),
    ),
    {
        Uuid.PLX_SPOT_CHECK_MEASUREMENT: codec_decoder(PlxSpotCheck),
        Uuid.PLX_CONTINUOUS_MEASUREMENT: codec_decoder(PlxContinuous),
    },
    sends_stored_records_on_connect=True,
    set_clock=True,
)

HEALTH_THERMOMETER = _profile(
    "sig.health_thermometer",
    "Thermometer (Bluetooth SIG Health Thermometer Service)",
    Kind.TEMPERATURE,
    (Uuid.HEALTH_THERMOMETER,),
    (
        C(Uuid.TEMPERATURE_MEASUREMENT, Mode.INDICATE, Role.MEASUREMENT),
        C(Uuid.INTERMEDIATE_TEMPERATURE, Mode.NOTIFY, Role.INTERMEDIATE, optional=True),
    ),
    {
        Uuid.TEMPERATURE_MEASUREMENT: codec_decoder(TemperatureMeasurement),
        Uuid.INTERMEDIATE_TEMPERATURE: checked_no_observations(IntermediateTemperature),
    },
    sends_stored_records_on_connect=True,
    set_clock=True,
)

SIG_PROFILES: tuple[DeviceProfile, ...] = (
    BLOOD_PRESSURE,
    GLUCOSE,
    CGM,
    # Order breaks ties: a scale advertising only Weight Scale is a plain scale.
    WEIGHT_SCALE,
    BODY_COMPOSITION,
    PULSE_OXIMETER,
    HEALTH_THERMOMETER,
)
