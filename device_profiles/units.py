"""Conversion of device units to the stored units (CLINICAL_RULES.md, "Conventions")."""

from __future__ import annotations

from device_profiles.errors import UnitError
from device_profiles.vocabulary import Unit

# Glucose: molar mass 180.16 g/mol, so 1 mmol/L = 18.016 mg/dL.
MG_DL_PER_MMOL_L = 18.016
KG_PER_LB = 0.45359237
MMHG_PER_KPA = 7.50062
CM_PER_INCH = 2.54

# Device unit spellings (GATT and vendor profiles) -> (stored unit, factor).
_CONVERSIONS: dict[str, tuple[Unit, float]] = {
    "mg/dL": (Unit.MMOL_L, 1.0 / MG_DL_PER_MMOL_L),
    "mmol/L": (Unit.MMOL_L, 1.0),
    "lb": (Unit.KG, KG_PER_LB),
    "kg": (Unit.KG, 1.0),
    "kPa": (Unit.MMHG, MMHG_PER_KPA),
    "mm[Hg]": (Unit.MMHG, 1.0),
    "mmHg": (Unit.MMHG, 1.0),
    "[in_i]": (Unit.CM, CM_PER_INCH),
    "in": (Unit.CM, CM_PER_INCH),
    "m": (Unit.CM, 100.0),
    "cm": (Unit.CM, 1.0),
    "[degF]": (Unit.CEL, float("nan")),  # affine, handled below
    "Cel": (Unit.CEL, 1.0),
    "L/min": (Unit.L_MIN, 1.0),
    "L/s": (Unit.L_MIN, 60.0),
    "L": (Unit.LITRE, 1.0),
    "mL": (Unit.LITRE, 0.001),
    "%": (Unit.PERCENT, 1.0),
    "/min": (Unit.BPM, 1.0),
    "kg/m2": (Unit.KG_M2, 1.0),
    "{score}": (Unit.SCORE, 1.0),
    "{count}": (Unit.COUNT, 1.0),
}


def to_stored(value: float, unit: str) -> tuple[float, Unit]:
    """Convert ``value`` in a device unit to the stored unit; raise UnitError if unknown."""
    try:
        stored, factor = _CONVERSIONS[unit]
    except KeyError as err:
        raise UnitError(f"unknown unit {unit!r}") from err
    if unit == "[degF]":
        return (value - 32.0) * 5.0 / 9.0, stored
    return value * factor, stored


def stored_unit_of(unit: str) -> Unit:
    try:
        return _CONVERSIONS[unit][0]
    except KeyError as err:
        raise UnitError(f"unknown unit {unit!r}") from err
